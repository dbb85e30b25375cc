/*
 * Starting the HTTP adapter from tallyd's options (web.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/error.h>

#include "server.h"
#include "web.h"

static void
web_log(void *arg, const char *line)
{
	(void)arg;
	tallyd_log("%s", line);
}

tally_http_t *
tallyd_web_start(const tallyd_conf_t *conf, tally_core_t *core, const tally_http_opts_t *cbs,
                 char *errstr, size_t errstr_size)
{
	struct sockaddr_storage ss;
	socklen_t len;
	tally_http_opts_t o;
	tally_http_t *h;
	char addr[128];
	const char *token = conf->admin_token;

	/* A bare port listens on loopback. */
	if (strchr(conf->http, ':') == NULL)
		snprintf(addr, sizeof(addr), "127.0.0.1:%s", conf->http);
	else
		snprintf(addr, sizeof(addr), "%s", conf->http);
	if (tally_http_parse_addr(addr, &ss, &len, errstr, errstr_size) != 0)
		return NULL;
	if (token == NULL || token[0] == '\0')
		token = getenv("TALLY_ADMIN_TOKEN");
	memset(&o, 0, sizeof(o));
	o.addr = (const struct sockaddr *)&ss;
	o.addrlen = len;
	o.admin_token = token;
	o.ready = cbs->ready;
	o.admin = cbs->admin;
	o.metrics = cbs->metrics;
	o.snapshot = cbs->snapshot;
	/* Fresh enough for a counted vote to show within 100 ms at the median: states change
	 * with each checkpoint (every 50 ms by default), so look for one every 20 ms and let
	 * each stream client have one every 50 ms. */
	o.render_interval_ms = 20;
	o.stream_interval_ms = 50;
	o.cb_arg = cbs->cb_arg;
	o.log = web_log;
	if ((h = tally_http_new(core, &o, errstr, errstr_size)) == NULL)
		return NULL;
	if (tally_http_start(h, errstr, errstr_size) != 0) {
		tally_http_destroy(h);
		return NULL;
	}
	/* The token itself is never logged; only whether admin actions are on. */
	tallyd_log("serving http://%s/ (port %u; admin actions %s)", addr,
	           (unsigned)tally_http_port(h),
	           token != NULL && token[0] != '\0' && cbs->admin != NULL ? "on" : "off");
	return h;
}

void
tallyd_web_stop(tally_http_t *h)
{
	if (h == NULL)
		return;
	tally_http_stop(h);
	tally_http_destroy(h);
}
