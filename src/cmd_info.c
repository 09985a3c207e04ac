/* cmd_info.c - placeholder until the command lands. */
#include "cmd.h"

int eplb_cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return eplb_cmd_fail("info", eplb_error_set(EPLB_ERR_UNSUPPORTED, "not implemented yet"));
}
