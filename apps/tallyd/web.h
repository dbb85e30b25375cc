/*
 * tallyd's HTTP surfaces (web.c): the adapter of adapters/http/ started from tallyd's
 * options, for the server and for --simulate alike.
 */
#ifndef TALLYD_WEB_H
#define TALLYD_WEB_H

#include <stddef.h>

#include <tally/core.h>
#include <tally/http.h>

#include "conf.h"

/**
 * @brief Start serving on conf->http ("ADDR:PORT", or "PORT" meaning 127.0.0.1:PORT), with
 * the admin token from conf->admin_token or TALLY_ADMIN_TOKEN. cbs supplies the callbacks
 * (ready, admin, metrics and their argument); the rest of it is ignored.
 * @returns the running adapter, or NULL with errstr set (a bad address, a port in use).
 */
tally_http_t *tallyd_web_start(const tallyd_conf_t *conf, tally_core_t *core,
                               const tally_http_opts_t *cbs, char *errstr, size_t errstr_size);

/** @brief Stop and free. NULL is a no-op. */
void tallyd_web_stop(tally_http_t *h);

#endif /* TALLYD_WEB_H */
