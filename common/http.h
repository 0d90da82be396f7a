/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The little HTTP client the tools need: GET a daemon's /metrics
 * (vrioctl metrics, vrio-bench --breakdown), and the deadline-bound socket
 * helpers under it that vrioctl's control-socket calls share.
 */
#ifndef VRIO_COMMON_HTTP_H
#define VRIO_COMMON_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds left before deadline (vrio_now_ns()), at least 1 while any
 * is left; 0 once it passed. */
int vrio_remaining_ms(uint64_t deadline);
/* Waits for fd to be ready for `events` (poll(2)) before deadline:
 * 0, -ETIMEDOUT or -errno. */
int vrio_wait_fd(int fd, short events, uint64_t deadline);
/* Sends all of buf on a non-blocking socket before deadline. */
int vrio_send_all(int fd, const char *buf, size_t len, uint64_t deadline);

/* GET http://addr/path (addr HOST:PORT) within timeout_ms; on 200 stores
 * the body, NUL-terminated, in *body (the caller frees it) and its length
 * in *len. Otherwise -errno, with one line naming addr in err. */
int vrio_http_get(const char *addr, const char *path, int timeout_ms, char **body, size_t *len,
		  char *err, size_t errlen);

#endif
