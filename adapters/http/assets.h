/*
 * The dashboard's files, embedded at build time by embed.cmake (every file under
 * adapters/http/dashboard/, hidden files excepted). Private to adapters/http/.
 */
#ifndef TALLY_HTTP_ASSETS_H
#define TALLY_HTTP_ASSETS_H

#include <stddef.h>

typedef struct tally__http_asset {
	const char *path;                /* relative to dashboard/, e.g. "index.html" */
	const unsigned char *data;
	size_t len;
} tally__http_asset_t;

/* [tally__http_nassets] entries, sorted by path, then a NULL path. */
extern const tally__http_asset_t tally__http_assets[];
extern const unsigned tally__http_nassets;

#endif /* TALLY_HTTP_ASSETS_H */
