/* SPDX-License-Identifier: BSD-3-Clause */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
#define NS_PER_SEC   1000000000ull

/*
 * Set once by vrio_log_init() before the daemon starts its threads, read
 * by every thread afterwards.
 */
static struct {
	char prog[64];
	enum vrio_log_level max;
	int journal;
} log_cfg = {
	.prog = "vrio",
	.max = VRIO_LOG_INFO,
};

static const struct {
	const char *name;
	enum vrio_log_level level;
} log_levels[] = {
	{ "error", VRIO_LOG_ERR },
	{ "warning", VRIO_LOG_WARN },
	{ "notice", VRIO_LOG_NOTICE },
	{ "info", VRIO_LOG_INFO },
	{ "debug", VRIO_LOG_DEBUG },
};

#define N_LOG_LEVELS (sizeof(log_levels) / sizeof(log_levels[0]))

static const char *log_level_name(enum vrio_log_level lvl)
{
	for (size_t i = 0; i < N_LOG_LEVELS; i++)
		if (log_levels[i].level == lvl)
			return log_levels[i].name;
	return "unknown";
}

void vrio_log_init(const char *prog, enum vrio_log_level max)
{
	const char *base;

	if (prog) {
		base = strrchr(prog, '/');
		base = base ? base + 1 : prog;
		snprintf(log_cfg.prog, sizeof(log_cfg.prog), "%s", base);
	}
	log_cfg.max = max;
	log_cfg.journal = getenv("JOURNAL_STREAM") != NULL;
}

int vrio_log_level_parse(const char *s)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < N_LOG_LEVELS; i++)
		if (strcmp(s, log_levels[i].name) == 0)
			return log_levels[i].level;
	return -EINVAL;
}

static void log_write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void vrio_log(enum vrio_log_level lvl, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	int saved_errno = errno;
	size_t len;
	va_list ap;
	int n;

	if (lvl > log_cfg.max)
		return;

	if (log_cfg.journal)
		n = snprintf(line, sizeof(line), "<%d>%s: ", (int)lvl, log_cfg.prog);
	else
		n = snprintf(line, sizeof(line), "%s: %s: ", log_cfg.prog, log_level_name(lvl));
	if (n < 0)
		goto out;
	len = (size_t)n;

	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (n < 0)
		goto out;
	len += (size_t)n;

	/* Keep room for the newline; a truncated line ends in "...". */
	if (len > sizeof(line) - 2) {
		len = sizeof(line) - 2;
		memcpy(line + len - 3, "...", 3);
	}
	while (len > 0 && line[len - 1] == '\n')
		len--;
	line[len++] = '\n';
	log_write_all(line, len);
out:
	errno = saved_errno;
}

int vrio_ratelimit_ok(struct vrio_ratelimit *rl, unsigned burst, unsigned *suppressed)
{
	uint64_t now = vrio_now_ns();

	if (now - rl->window_start_ns >= NS_PER_SEC) {
		rl->window_start_ns = now;
		rl->printed = 0;
	}
	if (rl->printed < burst) {
		rl->printed++;
		if (suppressed)
			*suppressed = rl->suppressed;
		rl->suppressed = 0;
		return 1;
	}
	if (rl->suppressed < ~0u)
		rl->suppressed++;
	if (suppressed)
		*suppressed = 0;
	return 0;
}

uint64_t vrio_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}
