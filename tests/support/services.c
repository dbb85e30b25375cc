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
	const char *v = getenv(name);
	char *f;

	if (v != NULL && *v != '\0')
		return v;
	if ((f = from_env_file(TALLY_TEST_DIR "/../var/services.env", name)) != NULL)
		return f;
	fprintf(stderr, "%s is not set and var/services.env does not name it: run "
	                "\"scripts/services up\" first\n", name);
	abort();
}
