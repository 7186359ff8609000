/*
 * fake_config.h - a configuration whose email goes to the fake plugin
 * (tests/plugins/fake.c) as provider "a", written to a temporary directory
 * and loaded with its plugins, for the unit tests that run dispatch or the
 * queue on a real loop (test_dispatch, test_queue). The test fails on any
 * error.
 */
#ifndef HERALD_TEST_FAKE_CONFIG_H
#define HERALD_TEST_FAKE_CONFIG_H

#include "config.h"
#include "plugin.h"

struct fake_config {
    char dir[64];
    struct config cfg;
    struct plugin_set *ps;
};

/* daemon_extra: lines for [daemon]; provider_extra: lines for [provider a]. */
void fake_config_load(struct fake_config *fc, const char *daemon_extra, const char *provider_extra);
/* Frees the plugins and the config and removes the directory. */
void fake_config_free(struct fake_config *fc);

#endif
