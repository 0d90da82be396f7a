/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Logging to stderr, one line per event, the object's name first in the
 * message ("%s: queue %u ..."). Under journald (JOURNAL_STREAM set) lines
 * carry a <N> priority prefix so the journal keeps the level.
 */
#ifndef VRIO_COMMON_LOG_H
#define VRIO_COMMON_LOG_H

#include <stdint.h>

enum vrio_log_level {
	VRIO_LOG_ERR = 3,
	VRIO_LOG_WARN = 4,
	VRIO_LOG_NOTICE = 5,
	VRIO_LOG_INFO = 6,
	VRIO_LOG_DEBUG = 7,
};

void vrio_log_init(const char *prog, enum vrio_log_level max);
void vrio_log(enum vrio_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vrio_log_level_parse(const char *s);

/*
 * For anything a guest or a peer can trigger: at most `burst` lines per
 * second per call site; the next line that gets through says how many were
 * suppressed. The state is per call site and used by one thread.
 */
struct vrio_ratelimit {
	uint64_t window_start_ns;
	unsigned printed;
	unsigned suppressed;
};
int vrio_ratelimit_ok(struct vrio_ratelimit *rl, unsigned burst, unsigned *suppressed);

#define VRIO_ERR(...)	 vrio_log(VRIO_LOG_ERR, __VA_ARGS__)
#define VRIO_WARN(...)	 vrio_log(VRIO_LOG_WARN, __VA_ARGS__)
#define VRIO_NOTICE(...) vrio_log(VRIO_LOG_NOTICE, __VA_ARGS__)
#define VRIO_INFO(...)	 vrio_log(VRIO_LOG_INFO, __VA_ARGS__)
#define VRIO_DEBUG(...)	 vrio_log(VRIO_LOG_DEBUG, __VA_ARGS__)

/* Rate-limited logging from the data path: 10 lines a second per site. */
#define VRIO_LOG_RL(lvl, fmt, ...)                                                       \
	do {                                                                             \
		static __thread struct vrio_ratelimit rl_;                               \
		unsigned sup_;                                                           \
		if (vrio_ratelimit_ok(&rl_, 10, &sup_))                                  \
			vrio_log(lvl, fmt "%s", ##__VA_ARGS__,                           \
				 sup_ ? " (earlier lines suppressed)" : "");             \
	} while (0)
#define VRIO_ERR_RL(fmt, ...)  VRIO_LOG_RL(VRIO_LOG_ERR, fmt, ##__VA_ARGS__)
#define VRIO_WARN_RL(fmt, ...) VRIO_LOG_RL(VRIO_LOG_WARN, fmt, ##__VA_ARGS__)

uint64_t vrio_now_ns(void);

#endif
