#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services.h"

#ifndef TALLY_TEST_DIR
#define TALLY_TEST_DIR "tests"
#endif

/* Parse NAME='value' or NAME=value lines (as scripts/services writes them). */
static char *
from_env_file(const char *path, const char *name)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t n = strlen(name);
	char *found = NULL;

	if (f == NULL)
		return NULL;
	while (found == NULL && fgets(line, sizeof(line), f) != NULL) {
		char *v, *end;

		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, name, n) != 0 || line[n] != '=')
			continue;
		v = line + n + 1;
		end = v + strlen(v);
		if (*v == '\'' && end > v + 1 && end[-1] == '\'') {
			v++;
			end[-1] = '\0';
		}
		found = strdup(v);
	}
	fclose(f);
	return found;
}

const char *
tally_test_service(const char *name)
{
	/* Read once per name: the strings live until the process ends. */
	static struct {
		char name[32];
		char *value;
	} cache[4];
	const char *v = getenv(name);
	char *f;
	size_t i;

	if (v != NULL && *v != '\0')
		return v;
	for (i = 0; i < sizeof(cache) / sizeof(cache[0]) && cache[i].value != NULL; i++)
		if (strcmp(cache[i].name, name) == 0)
			return cache[i].value;
	if ((f = from_env_file(TALLY_TEST_DIR "/../var/services.env", name)) != NULL) {
		if (i < sizeof(cache) / sizeof(cache[0])) {
			snprintf(cache[i].name, sizeof(cache[i].name), "%s", name);
			cache[i].value = f;
		}
		return f;
	}
	fprintf(stderr, "%s is not set and var/services.env does not name it: run "
	                "\"scripts/services up\" first\n", name);
	abort();
}
