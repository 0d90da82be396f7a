/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRIO_COMMON_ADDR_H
#define VRIO_COMMON_ADDR_H

#include <sys/socket.h>

/* Split "host:port" (IPv4, [IPv6] or a name) into a socket address.
 * Returns 0 or -EINVAL. */
int vrio_parse_hostport(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen);

#endif
