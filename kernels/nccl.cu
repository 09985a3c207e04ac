// nccl.cu - libnccl.so.2 loaded at the first use (nccl_impl.h): the
// program links no NCCL, so it starts where the library is missing.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <pthread.h>

#include "nccl_impl.h"

namespace {
eplb_nccl_t table;
eplb_status_t load_st = EPLB_OK;
char load_msg[768];
pthread_once_t load_once = PTHREAD_ONCE_INIT;

void load(void)
{
    // EPLB_NCCL_LIB (docs/environment.md): another NCCL build, or, in the
    // tests, a missing library
    const char *env = getenv("EPLB_NCCL_LIB");
    const char *lib = env && *env ? env : EPLB_NCCL_LIB;
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        load_st = EPLB_ERR_UNSUPPORTED;
        snprintf(load_msg, sizeof load_msg,
                 "cannot load %s (NCCL 2.7 or later): %s; install NCCL (Debian/Ubuntu: "
                 "libnccl2) or add its directory to LD_LIBRARY_PATH",
                 lib, why ? why : "not found");
        return;
    }
    const struct {
        const char *name;
        void *slot; // the address of the table's function pointer
    } syms[] = {
        {"ncclGetVersion", &table.GetVersion},
        {"ncclGetErrorString", &table.GetErrorString},
        {"ncclCommInitAll", &table.CommInitAll},
        {"ncclCommDestroy", &table.CommDestroy},
        {"ncclCommAbort", &table.CommAbort},
        {"ncclCommGetAsyncError", &table.CommGetAsyncError},
        {"ncclGroupStart", &table.GroupStart},
        {"ncclGroupEnd", &table.GroupEnd},
        {"ncclSend", &table.Send},
        {"ncclRecv", &table.Recv},
    };
    for (const auto &s : syms) {
        void *f = dlsym(h, s.name);
        if (!f) {
            load_st = EPLB_ERR_UNSUPPORTED;
            snprintf(load_msg, sizeof load_msg,
                     "%s has no %s: not NCCL, or NCCL older than 2.7 (ncclSend/ncclRecv)", lib,
                     s.name);
            memset(&table, 0, sizeof table); // no pointer into the closed library
            dlclose(h);
            return;
        }
        memcpy(s.slot, &f, sizeof f); // a data pointer into a function pointer
    }
    int v = 0;
    if (table.GetVersion(&v) != ncclSuccess || v < 2700) {
        char txt[32];
        eplb_nccl_version_text(txt, sizeof txt, v);
        load_st = EPLB_ERR_UNSUPPORTED;
        snprintf(load_msg, sizeof load_msg,
                 "%s is NCCL %s: 2.7 or later needed (ncclSend/ncclRecv)", lib, txt);
        memset(&table, 0, sizeof table);
        dlclose(h);
        return;
    }
    table.version = v;
    // the handle stays open: NCCL keeps threads and state until exit
}
} // namespace

eplb_status_t eplb_nccl_load(const eplb_nccl_t **out)
{
    pthread_once(&load_once, load);
    if (load_st != EPLB_OK)
        return eplb_error_set(load_st, "%s", load_msg);
    *out = &table;
    return EPLB_OK;
}

void eplb_nccl_version_text(char *buf, size_t size, int code)
{
    if (code >= 10000) // NCCL_VERSION(X, Y, Z) after 2.8: X * 10000 + Y * 100 + Z
        snprintf(buf, size, "%d.%d.%d", code / 10000, code % 10000 / 100, code % 100);
    else
        snprintf(buf, size, "%d.%d.%d", code / 1000, code % 1000 / 100, code % 100);
}

eplb_status_t eplb_nccl_fail(ncclResult_t r, const char *what, const char *file, int line)
{
    return eplb_error_set(EPLB_ERR_CUDA, "%s:%d: %s: NCCL error %d (%s)", file, line, what, (int)r,
                          table.GetErrorString ? table.GetErrorString(r) : "?");
}
