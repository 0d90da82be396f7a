/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The manual page vrio-topology(5) against the loader's key tables: every
 * key vrio_topology_keys() lists is documented in the page's KEYS section,
 * and the page documents no key the loader refuses. In that section each
 * "## " heading names a section of the file ("The top level",
 * "io_servers[]", "devices[].interpose[].acl.rules[]": the "[]" dropped,
 * it is the accessor's section) and each line starting with *key* documents
 * a key of it: *key* alone on the line, or followed by " (required)".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topology.h"

#define MAX_KEYS	512
#define KEY_LEN		128
#define TOP_LEVEL	"The top level"

struct keys {
	char k[MAX_KEYS][KEY_LEN];	/* "section key" */
	unsigned n;
	unsigned dups;			/* a key given twice */
};

static int keys_find(const struct keys *s, const char *k)
{
	for (unsigned i = 0; i < s->n; i++)
		if (strcmp(s->k[i], k) == 0)
			return (int)i;
	return -1;
}

static void keys_add(struct keys *s, const char *section, const char *key)
{
	char k[KEY_LEN];

	assert_true((size_t)snprintf(k, sizeof(k), "%s %s", section, key) < sizeof(k));
	if (keys_find(s, k) >= 0) {
		print_error("'%s' (section '%s') is listed twice\n", key, section);
		s->dups++;
		return;
	}
	assert_true(s->n < MAX_KEYS);
	strcpy(s->k[s->n++], k);
}

static void loader_key(const char *section, const char *key, void *arg)
{
	struct keys *s = arg;
	char k[KEY_LEN];

	/* io_servers.dpdk and hosts.dpdk share a table; a section lists a key once. */
	snprintf(k, sizeof(k), "%s %s", section, key);
	if (keys_find(s, k) < 0)
		keys_add(s, section, key);
}

/* "devices[].interpose[].acl.rules[]" -> "devices.interpose.acl.rules". */
static void heading_section(const char *title, char *out, size_t len)
{
	size_t n = 0;

	if (strcmp(title, TOP_LEVEL) == 0) {
		out[0] = '\0';
		return;
	}
	for (const char *p = title; *p && n + 1 < len; p++) {
		if (p[0] == '[' && p[1] == ']') {
			p++;
			continue;
		}
		out[n++] = *p;
	}
	out[n] = '\0';
}

/* The keys the page's KEYS section documents. */
static void man_keys(FILE *f, struct keys *s)
{
	char line[1024], section[KEY_LEN] = "", key[KEY_LEN];
	bool in_keys = false, in_section = false;

	while (fgets(line, sizeof(line), f)) {
		size_t n;

		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "# ", 2) == 0) {
			in_keys = strcmp(line + 2, "KEYS") == 0;
			in_section = false;
			continue;
		}
		if (!in_keys)
			continue;
		if (strncmp(line, "## ", 3) == 0) {
			heading_section(line + 3, section, sizeof(section));
			in_section = true;
			continue;
		}
		if (line[0] != '*' || !in_section)
			continue;
		n = strspn(line + 1, "abcdefghijklmnopqrstuvwxyz0123456789_");
		/* "*key*" alone, or "*key* (required)": a term, not prose. */
		if (n == 0 || n >= sizeof(key) || line[1 + n] != '*' ||
		    (line[2 + n] && strncmp(line + 2 + n, " (", 2) != 0))
			continue;
		memcpy(key, line + 1, n);
		key[n] = '\0';
		keys_add(s, section, key);
	}
}

/* The parser itself, on a page of known shape. */
static void test_parser(void **state)
{
	static const char page[] =
		"x(5)\n\n# NAME\n\n*notakey*\n\n# KEYS\n\n*before_a_heading*\n\n"
		"## The top level\n\n*version* (required)\n\tThe version.\n*io_servers*\n\n"
		"Some *prose* line.\n*Capital*\n*name_with_2*\n*wrapped*, prose\n"
		"## io_servers[].cores\n\n*min*\n\n"
		"## devices[].interpose[].acl.rules[]\n*action*\n"
		"# SEE ALSO\n\n*vrioctl*(8)\n";
	static const char *const want[] = {
		" version", " io_servers", " name_with_2", "io_servers.cores min",
		"devices.interpose.acl.rules action",
	};
	struct keys *s = calloc(1, sizeof(*s));
	FILE *f = fmemopen((void *)page, sizeof(page) - 1, "r");

	assert_non_null(s);
	assert_non_null(f);
	man_keys(f, s);
	fclose(f);
	assert_int_equal(s->n, sizeof(want) / sizeof(want[0]));
	for (unsigned i = 0; i < s->n; i++)
		assert_string_equal(s->k[i], want[i]);
	free(s);
}

/* "section key": the one and the other, for messages. */
static void split(const char *k, char *section, size_t len, const char **key)
{
	size_t n = strcspn(k, " ");

	*key = k + n + 1;
	snprintf(section, len, "%.*s", (int)n, k);
	if (n == 0)
		snprintf(section, len, "%s", TOP_LEVEL);
}

static void test_page_matches_loader(void **state)
{
	struct keys *loader = calloc(1, sizeof(*loader)), *man = calloc(1, sizeof(*man));
	const char *path = VRIO_MAN_TOPOLOGY;
	unsigned missing = 0, extra = 0;
	char section[KEY_LEN];
	const char *key;
	FILE *f;

	assert_non_null(loader);
	assert_non_null(man);
	vrio_topology_keys(loader_key, loader);
	/* The tables hold at least what the first release had. */
	assert_true(loader->n >= 40);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	man_keys(f, man);
	fclose(f);

	for (unsigned i = 0; i < loader->n; i++) {
		if (keys_find(man, loader->k[i]) >= 0)
			continue;
		split(loader->k[i], section, sizeof(section), &key);
		print_error("%s: the loader accepts '%s' in %s, the page does not document it\n",
			    path, key, section);
		missing++;
	}
	for (unsigned i = 0; i < man->n; i++) {
		if (keys_find(loader, man->k[i]) >= 0)
			continue;
		split(man->k[i], section, sizeof(section), &key);
		print_error("%s: the page documents '%s' in %s, the loader does not accept it\n",
			    path, key, section);
		extra++;
	}
	assert_int_equal(man->dups, 0);
	assert_int_equal(missing, 0);
	assert_int_equal(extra, 0);
	free(loader);
	free(man);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parser),
		cmocka_unit_test(test_page_matches_loader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
