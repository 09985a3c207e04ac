/* cmd_import.c - placeholder until the command lands. */
#include "cmd.h"

int eplb_cmd_import(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return eplb_cmd_fail("import", eplb_error_set(EPLB_ERR_UNSUPPORTED, "not implemented yet"));
}
