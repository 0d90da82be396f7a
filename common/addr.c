/* SPDX-License-Identifier: BSD-3-Clause */
#include "addr.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>

/* A DNS name is at most 253 characters; an IPv6 literal with scope fits too. */
#define HOST_MAX 255

static int addr_port_ok(const char *port)
{
	unsigned long v = 0;
	size_t n = 0;

	for (; port[n]; n++) {
		if (port[n] < '0' || port[n] > '9' || n >= 5)
			return 0;
		v = v * 10 + (unsigned long)(port[n] - '0');
	}
	return n > 0 && v <= 65535;
}

int vrio_parse_hostport(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	char host[HOST_MAX + 1];
	const char *start, *port;
	struct addrinfo *res;
	size_t hostlen;

	if (!addr || !ss || !sslen)
		return -EINVAL;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		start = addr + 1;
		hostlen = (size_t)(end - start);
		port = end + 2;
		hints.ai_family = AF_INET6;
		hints.ai_flags |= AI_NUMERICHOST;
	} else {
		const char *colon = strrchr(addr, ':');

		/* A bare IPv6 literal is ambiguous: it must be bracketed. */
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return -EINVAL;
		start = addr;
		hostlen = (size_t)(colon - addr);
		port = colon + 1;
	}
	if (hostlen == 0 || hostlen >= sizeof(host) || !addr_port_ok(port))
		return -EINVAL;
	memcpy(host, start, hostlen);
	host[hostlen] = '\0';
	if (strpbrk(host, "[] \t\r\n"))
		return -EINVAL;

	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -EINVAL;
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}
