/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transport library's TLS calls, for the harnesses that compile the
 * io-server's code without the transport backends: no fuzzed topology
 * turns TLS on, and no harness connection is a TLS one.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "tls.h"
#include "transport.h"

struct vrio_tls_ctx *vrio_tls_ctx_new(const struct vrio_tls_opts *o)
{
	(void)o;
	return NULL;
}

void vrio_tls_ctx_free(struct vrio_tls_ctx *x)
{
	(void)x;
}

/* As for any connection without a TLS layer. */
int vrio_tls_binding(struct vrio_conn *c, uint8_t out[VRIO_TLS_BINDING_LEN])
{
	(void)c;
	(void)out;
	return -ENOENT;
}

void vrio_stack_tls(struct vrio_stack *s, struct vrio_tls_ctx *tls)
{
	(void)s;
	(void)tls;
}

void vrio_stack_fini(struct vrio_stack *s)
{
	(void)s;
}
