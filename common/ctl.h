/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A daemon's control socket: JSON-RPC 2.0 over a unix stream socket, root
 * only (mode 0600), as SPDK's rpc.py speaks it: each request is one JSON
 * object, one after another on the stream with or without whitespace
 * between them; each answer is one compact JSON object and "\n".
 *
 * The server has no thread: its owner adds vrio_ctl_pollfds() to its poll()
 * set and calls vrio_ctl_process() after each poll; handlers run there, on
 * the owner's thread. Nothing a client sends blocks the server: a request
 * larger than VRIO_CTL_MAX_REQUEST or a parse error closes that client, a
 * client that lets more than VRIO_CTL_MAX_OUTPUT of answers pile up is
 * dropped, and at most VRIO_CTL_MAX_CLIENTS are connected at once.
 *
 * The protocol itself runs on a socket-free core (struct vrio_ctl_conn):
 * bytes fed in, answer bytes out. The socket layer and the fuzz harness
 * both drive that same code.
 */
#ifndef VRIO_COMMON_CTL_H
#define VRIO_COMMON_CTL_H

#include <jansson.h>
#include <poll.h>
#include <stddef.h>

#define VRIO_CTL_MAX_REQUEST	(64u * 1024)	/* bytes of one request */
#define VRIO_CTL_MAX_OUTPUT	(1u << 20)	/* unread answers, per client */
#define VRIO_CTL_MAX_CLIENTS	16

/* JSON-RPC 2.0 error codes; -32099..-32000 are the application's. */
#define VRIO_CTL_PARSE_ERROR		-32700
#define VRIO_CTL_INVALID_REQUEST	-32600
#define VRIO_CTL_METHOD_NOT_FOUND	-32601
#define VRIO_CTL_INVALID_PARAMS		-32602
#define VRIO_CTL_INTERNAL_ERROR		-32603
#define VRIO_CTL_EFAILED		-32000	/* the operation failed */

struct vrio_ctl;	/* the server */
struct vrio_ctl_req;	/* one request being answered */

/*
 * A method handler. It must answer exactly once before it returns, with
 * vrio_ctl_reply() or vrio_ctl_error() (a handler that does not is answered
 * INTERNAL_ERROR for; a second answer is dropped). params is NULL (absent),
 * an object or an array, and is only valid during the call. A handler must
 * not close the server.
 */
typedef void (*vrio_ctl_fn)(void *arg, struct vrio_ctl_req *req, const json_t *params);

struct vrio_ctl_method {
	const char *name;
	vrio_ctl_fn fn;
	const char *help;	/* one line, for the reader of the table */
};

/*
 * Creates the socket at path (its missing parent directories 0755), mode
 * 0600; only root and the server's own user may connect. A stale socket
 * file (connect() is refused) is replaced; a live one is -EADDRINUSE, any
 * other file -EEXIST. methods is kept by pointer and must outlive the
 * server; a method without a name or handler, or a duplicate name
 * (including the built-in "rpc_get_methods", which lists the names, as
 * SPDK's does) is -EINVAL. Errors are logged once, naming the path.
 */
int vrio_ctl_open(const char *path, const struct vrio_ctl_method *methods, size_t n_methods,
		  void *arg, struct vrio_ctl **out);
/* Closes the clients and the socket, and unlinks the socket file if it is
 * still the one this server bound. NULL is ok. */
void vrio_ctl_close(struct vrio_ctl *c);

/* Fills up to max pollfds (the listener, then the clients); returns how
 * many. At most 1 + VRIO_CTL_MAX_CLIENTS. */
int vrio_ctl_pollfds(const struct vrio_ctl *c, struct pollfd *fds, int max);
/*
 * After poll(): accepts, reads, parses and dispatches what is ready and
 * writes answers. Never blocks. fds may be the caller's larger set:
 * entries whose fd is not the server's are ignored.
 */
void vrio_ctl_process(struct vrio_ctl *c, const struct pollfd *fds, int n);

/*
 * Answers a request; both steal the reference to result / data. A NULL
 * result (a json_pack() that failed) answers INTERNAL_ERROR; for nothing to
 * say, reply json_true() as SPDK does, or json_null().
 */
void vrio_ctl_reply(struct vrio_ctl_req *r, json_t *result);
void vrio_ctl_error(struct vrio_ctl_req *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Structured error data (e.g. {"file":..,"line":..,"col":..}) for the
 * next vrio_ctl_error() on r. */
void vrio_ctl_error_data(struct vrio_ctl_req *r, json_t *data);
/* The method name of a request, for a handler's log lines. */
const char *vrio_ctl_req_method(const struct vrio_ctl_req *r);

/*
 * The socket-free core, for tests and fuzzing. vrio_ctl_create() makes a
 * server without a socket (its pollfds and process do nothing); a conn is
 * one client's protocol state.
 */
int vrio_ctl_create(const struct vrio_ctl_method *methods, size_t n_methods, void *arg,
		    struct vrio_ctl **out);

struct vrio_ctl_conn;
struct vrio_ctl_conn *vrio_ctl_conn_new(struct vrio_ctl *c);
void vrio_ctl_conn_free(struct vrio_ctl_conn *conn);
/*
 * Takes len bytes from the client, answers every complete request in them
 * and appends the answers to the conn's output. Returns 0, or a negative
 * errno once the client must be closed (its output written first, if
 * any): -EBADMSG a parse error, -EMSGSIZE a request too large, -ENOBUFS
 * more than VRIO_CTL_MAX_OUTPUT of unread answers (the output is
 * discarded), -ENOMEM. After that, further input is ignored.
 */
int vrio_ctl_conn_feed(struct vrio_ctl_conn *conn, const void *buf, size_t len);
/* The answer bytes not yet consumed. */
const char *vrio_ctl_conn_output(const struct vrio_ctl_conn *conn, size_t *len);
/* n bytes of the output were written to the client. */
void vrio_ctl_conn_consume(struct vrio_ctl_conn *conn, size_t n);

#endif
