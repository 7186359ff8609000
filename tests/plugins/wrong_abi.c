/* wrong_abi.c - a plugin built for another ABI version; the loader must refuse it. */
#include "herald_channel.h"

static const struct herald_channel_plugin wrong = {
    .abi_version = HERALD_CHANNEL_ABI_VERSION + 1,
    .size = sizeof(struct herald_channel_plugin),
    .name = "wrong_abi",
    .channels = "email",
};

HERALD_EXPORT const struct herald_channel_plugin *herald_channel_plugin(void) { return &wrong; }
