/* SPDX-License-Identifier: BSD-3-Clause */
#include "ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define CTL_READ_CHUNK	 16384	/* bytes read from one client per process call */
#define CTL_ACCEPT_BURST 32	/* connections accepted per process call */
#define CTL_BACKLOG	 16
#define CTL_PATH_MAX	 sizeof(((struct sockaddr_un *)0)->sun_path)

/*
 * Framing. JSON has no length prefix, and jansson cannot tell a request
 * cut short by the stream ("tr" of "true", "1e" of "1e5", a trailing "\")
 * from a bad one: it calls both invalid. So a small scanner finds where the
 * value that starts the buffer ends (balanced brackets outside strings; a
 * bare literal or number ends at a delimiter), and jansson then parses
 * exactly those bytes. The scanner resumes where it stopped, so a request
 * trickled in byte by byte costs linear time.
 */
struct ctl_scan {
	size_t pos;		/* bytes of the current value scanned */
	unsigned depth;		/* open brackets */
	bool in_str, esc;	/* inside a string; after a backslash in it */
	bool scalar;		/* the value is a bare literal or number */
};

struct vrio_ctl_conn {
	struct vrio_ctl *ctl;
	int fd;			/* -1: socket-free */
	int pid;		/* the peer's, for log lines; 0 if unknown */
	int err;		/* != 0: closing (see vrio_ctl_conn_feed) */
	bool eof;		/* the peer will send nothing more */
	struct ctl_scan scan;
	char *out;		/* answers in out[out_off, out_len) */
	size_t out_off, out_len, out_cap;
	size_t in_off, in_len;	/* pending input in in[in_off, in_len) */
	char in[VRIO_CTL_MAX_REQUEST];
};

struct vrio_ctl_req {
	struct vrio_ctl_conn *conn;
	const char *method;
	json_t *id;		/* borrowed; NULL answers "id": null */
	json_t *data;		/* for the next error */
	bool notification;	/* no answer goes out */
	bool answered;
};

struct vrio_ctl {
	char path[CTL_PATH_MAX];	/* for log lines */
	int fd;				/* the listener; -1: socket-free */
	dev_t dev;			/* the socket file this server bound */
	ino_t ino;
	const struct vrio_ctl_method *methods;
	size_t n_methods;
	void *arg;
	struct vrio_ctl_conn *clients[VRIO_CTL_MAX_CLIENTS];
	unsigned n_clients;
};

static void ctl_get_methods(void *arg, struct vrio_ctl_req *r, const json_t *params);

/* Built-in methods; their handler's arg is the server. */
static const struct vrio_ctl_method ctl_builtins[] = {
	{ "rpc_get_methods", ctl_get_methods, "list the methods of this server" },
};

#define N_CTL_BUILTINS (sizeof(ctl_builtins) / sizeof(ctl_builtins[0]))

/* Output. */

/* A JSON string of s; bytes that are not UTF-8 become '?' (messages may
 * quote what a client sent). */
static json_t *ctl_string(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j)
		return j;
	copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static int ctl_out_reserve(struct vrio_ctl_conn *conn, size_t extra)
{
	size_t cap = conn->out_cap ? conn->out_cap : 4096;
	char *buf;

	if (conn->out_off && conn->out_cap - conn->out_len < extra) {
		memmove(conn->out, conn->out + conn->out_off, conn->out_len - conn->out_off);
		conn->out_len -= conn->out_off;
		conn->out_off = 0;
	}
	if (conn->out_cap - conn->out_len >= extra)
		return 0;
	while (cap - conn->out_len < extra)
		cap *= 2;
	buf = realloc(conn->out, cap);
	if (!buf)
		return -ENOMEM;
	conn->out = buf;
	conn->out_cap = cap;
	return 0;
}

/* Appends one answer line; past the bound the client is dropped. */
static void ctl_out_line(struct vrio_ctl_conn *conn, const char *text)
{
	size_t len = strlen(text);

	if (conn->out_len - conn->out_off + len + 1 > VRIO_CTL_MAX_OUTPUT) {
		VRIO_WARN_RL("ctl %s: client pid %d: more than %u bytes of unread answers, "
			     "dropping it", conn->ctl->path, conn->pid, VRIO_CTL_MAX_OUTPUT);
		conn->out_off = conn->out_len = 0;
		conn->err = -ENOBUFS;
		return;
	}
	if (ctl_out_reserve(conn, len + 1)) {
		conn->err = -ENOMEM;
		return;
	}
	memcpy(conn->out + conn->out_len, text, len);
	conn->out[conn->out_len + len] = '\n';
	conn->out_len += len + 1;
}

/* Sends {"jsonrpc":"2.0", key: val, "id": id} unless r is a notification. */
static void ctl_answer(struct vrio_ctl_req *r, const char *key, json_t *val)
{
	json_t *msg;
	char *text;

	if (r->answered) {
		VRIO_ERR("ctl %s: method %s answered twice", r->conn->ctl->path, r->method);
		json_decref(val);
		return;
	}
	r->answered = true;
	if (r->notification || r->conn->err) {
		json_decref(val);
		return;
	}
	/* "o" steals val, also when packing fails. */
	msg = json_pack("{s:s, s:o, s:O?}", "jsonrpc", "2.0", key, val, "id", r->id);
	text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	if (!text) {
		r->conn->err = -ENOMEM;
		return;
	}
	ctl_out_line(r->conn, text);
	free(text);
}

void vrio_ctl_reply(struct vrio_ctl_req *r, json_t *result)
{
	/* NULL is most likely a json_pack() that failed: not a success. */
	if (!result) {
		vrio_ctl_error(r, VRIO_CTL_INTERNAL_ERROR, "%s: no result", r->method);
		return;
	}
	ctl_answer(r, "result", result);
}

void vrio_ctl_error_data(struct vrio_ctl_req *r, json_t *data)
{
	json_decref(r->data);
	r->data = data;
}

static void ctl_verror(struct vrio_ctl_req *r, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void ctl_verror(struct vrio_ctl_req *r, int code, const char *fmt, va_list ap)
{
	char msg[1024];
	json_t *err;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	err = json_pack("{s:i, s:o}", "code", code, "message", ctl_string(msg));
	if (err && r->data)
		json_object_set(err, "data", r->data);
	json_decref(r->data);
	r->data = NULL;
	ctl_answer(r, "error", err);
}

void vrio_ctl_error(struct vrio_ctl_req *r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_verror(r, code, fmt, ap);
	va_end(ap);
}

const char *vrio_ctl_req_method(const struct vrio_ctl_req *r)
{
	return r->method;
}

/* Dispatch. */

static void ctl_get_methods(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	const struct vrio_ctl *c = arg;
	json_t *names = json_array();
	size_t i;

	for (i = 0; names && i < N_CTL_BUILTINS; i++)
		json_array_append_new(names, json_string(ctl_builtins[i].name));
	for (i = 0; names && i < c->n_methods; i++)
		json_array_append_new(names, json_string(c->methods[i].name));
	if (!names) {
		vrio_ctl_error(r, VRIO_CTL_INTERNAL_ERROR, "out of memory");
		return;
	}
	vrio_ctl_reply(r, names);
}

static const struct vrio_ctl_method *ctl_find(const struct vrio_ctl *c, const char *name,
					      void **arg)
{
	size_t i;

	for (i = 0; i < N_CTL_BUILTINS; i++) {
		if (strcmp(ctl_builtins[i].name, name) == 0) {
			*arg = (void *)c;
			return &ctl_builtins[i];
		}
	}
	for (i = 0; i < c->n_methods; i++) {
		if (strcmp(c->methods[i].name, name) == 0) {
			*arg = c->arg;
			return &c->methods[i];
		}
	}
	return NULL;
}

static bool ctl_id_ok(const json_t *id)
{
	return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

/*
 * Checks a request object and fills r; returns why it is not a JSON-RPC
 * 2.0 request, or NULL. An invalid request is answered (JSON-RPC 2.0 §5),
 * with its id when that much is readable.
 */
static const char *ctl_check_request(json_t *msg, struct vrio_ctl_req *r, json_t **params)
{
	json_t *id, *method, *version;

	if (!json_is_object(msg))
		return json_is_array(msg) ? "batch requests are not supported" :
					    "a request must be an object";
	id = json_object_get(msg, "id");
	if (id && !ctl_id_ok(id))
		return "id must be a string, a number or null";
	r->id = id;
	version = json_object_get(msg, "jsonrpc");
	if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0)
		return "jsonrpc must be \"2.0\"";
	method = json_object_get(msg, "method");
	if (!json_is_string(method))
		return "method must be a string";
	*params = json_object_get(msg, "params");
	if (*params && !json_is_object(*params) && !json_is_array(*params))
		return "params must be an object or an array";
	r->method = json_string_value(method);
	r->notification = !id;
	return NULL;
}

static void ctl_dispatch(struct vrio_ctl_conn *conn, json_t *msg)
{
	struct vrio_ctl_req r = { .conn = conn, .method = "(none)" };
	const struct vrio_ctl_method *m;
	json_t *params = NULL;
	const char *why;
	void *arg;

	why = ctl_check_request(msg, &r, &params);
	if (why) {
		vrio_ctl_error(&r, VRIO_CTL_INVALID_REQUEST, "invalid request: %s", why);
		return;
	}
	m = ctl_find(conn->ctl, r.method, &arg);
	if (!m) {
		vrio_ctl_error(&r, VRIO_CTL_METHOD_NOT_FOUND, "method '%s' not found", r.method);
		return;
	}
	m->fn(arg, &r, params);
	if (!r.answered) {
		VRIO_ERR("ctl %s: method %s did not answer", conn->ctl->path, r.method);
		vrio_ctl_error(&r, VRIO_CTL_INTERNAL_ERROR, "method %s did not answer", r.method);
	}
	json_decref(r.data);
}

/* Answers an error that loses the stream position, and closes the client. */
static void ctl_fatal(struct vrio_ctl_conn *conn, int err, int code, const char *msg)
{
	struct vrio_ctl_req r = { .conn = conn, .method = "(none)" };

	VRIO_WARN_RL("ctl %s: client pid %d: %s, closing it", conn->ctl->path, conn->pid, msg);
	vrio_ctl_error(&r, code, "%s", msg);
	if (!conn->err)
		conn->err = err;
}

/* One complete value of len bytes. */
static void ctl_handle(struct vrio_ctl_conn *conn, const char *p, size_t len)
{
	json_error_t je;
	char msg[256];
	json_t *v;

	v = json_loadb(p, len, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &je);
	if (!v || (size_t)je.position != len) {
		if (v)
			snprintf(msg, sizeof(msg), "parse error: %zu bytes after the value",
				 len - (size_t)je.position);
		else
			snprintf(msg, sizeof(msg), "parse error at byte %d: %s", je.position,
				 je.text);
		json_decref(v);
		ctl_fatal(conn, -EBADMSG, VRIO_CTL_PARSE_ERROR, msg);
		return;
	}
	ctl_dispatch(conn, v);
	json_decref(v);
}

static bool ctl_is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* What ends a bare literal or number. */
static bool ctl_is_delim(char ch)
{
	return ctl_is_space(ch) || (ch && strchr("{}[],:\"", ch));
}

/* A string's character, from a scan resumed at s->pos. */
static void ctl_scan_str(struct ctl_scan *s, char ch)
{
	if (s->esc)
		s->esc = false;
	else if (ch == '\\')
		s->esc = true;
	else if (ch == '"')
		s->in_str = false;
}

/* Resumes scanning the value at p[0]; true once it is p[0, s->pos). */
static bool ctl_scan(struct ctl_scan *s, const char *p, size_t len)
{
	for (; s->pos < len; s->pos++) {
		char ch = p[s->pos];

		if (s->in_str) {
			ctl_scan_str(s, ch);
			if (!s->in_str && s->depth == 0)
				break;
		} else if (s->scalar) {
			if (ctl_is_delim(ch))
				return true;
		} else if (ch == '"') {
			s->in_str = true;
		} else if (ch == '{' || ch == '[') {
			s->depth++;
		} else if (ch == '}' || ch == ']') {
			/* <= 1: also an unmatched one at the start, which jansson refuses */
			if (s->depth <= 1)
				break;
			s->depth--;
		} else if (s->depth == 0) {
			s->scalar = true;
		}
	}
	if (s->pos == len)
		return false;
	s->pos++;
	return true;
}

/* Answers every complete value in the input. */
static void ctl_parse_all(struct vrio_ctl_conn *conn)
{
	while (!conn->err) {
		if (conn->scan.pos == 0)
			while (conn->in_off < conn->in_len && ctl_is_space(conn->in[conn->in_off]))
				conn->in_off++;
		if (conn->in_off == conn->in_len)
			return;
		if (!ctl_scan(&conn->scan, conn->in + conn->in_off, conn->in_len - conn->in_off)) {
			if (conn->in_len - conn->in_off >= VRIO_CTL_MAX_REQUEST)
				ctl_fatal(conn, -EMSGSIZE, VRIO_CTL_INVALID_REQUEST,
					  "request too large (more than 65536 bytes)");
			return;
		}
		ctl_handle(conn, conn->in + conn->in_off, conn->scan.pos);
		conn->in_off += conn->scan.pos;
		memset(&conn->scan, 0, sizeof(conn->scan));
	}
}

int vrio_ctl_conn_feed(struct vrio_ctl_conn *conn, const void *buf, size_t len)
{
	const char *p = buf;

	while (!conn->err && len > 0) {
		size_t n;

		memmove(conn->in, conn->in + conn->in_off, conn->in_len - conn->in_off);
		conn->in_len -= conn->in_off;
		conn->in_off = 0;
		n = VRIO_CTL_MAX_REQUEST - conn->in_len;
		n = n < len ? n : len;
		memcpy(conn->in + conn->in_len, p, n);
		conn->in_len += n;
		p += n;
		len -= n;
		ctl_parse_all(conn);
	}
	return conn->err;
}

const char *vrio_ctl_conn_output(const struct vrio_ctl_conn *conn, size_t *len)
{
	*len = conn->out_len - conn->out_off;
	return conn->out ? conn->out + conn->out_off : "";
}

void vrio_ctl_conn_consume(struct vrio_ctl_conn *conn, size_t n)
{
	size_t left = conn->out_len - conn->out_off;

	conn->out_off += n < left ? n : left;
	if (conn->out_off == conn->out_len)
		conn->out_off = conn->out_len = 0;
}

struct vrio_ctl_conn *vrio_ctl_conn_new(struct vrio_ctl *c)
{
	struct vrio_ctl_conn *conn = calloc(1, sizeof(*conn));

	if (!conn)
		return NULL;
	conn->ctl = c;
	conn->fd = -1;
	return conn;
}

void vrio_ctl_conn_free(struct vrio_ctl_conn *conn)
{
	if (!conn)
		return;
	if (conn->fd >= 0)
		close(conn->fd);
	free(conn->out);
	free(conn);
}

/* The server. */

static bool ctl_name_taken(const struct vrio_ctl_method *m, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < N_CTL_BUILTINS; i++)
		if (strcmp(ctl_builtins[i].name, name) == 0)
			return true;
	for (i = 0; i < n; i++)
		if (strcmp(m[i].name, name) == 0)
			return true;
	return false;
}

static int ctl_check_methods(const char *name, const struct vrio_ctl_method *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!m[i].name || !m[i].fn) {
			VRIO_ERR("ctl %s: method %zu has no name or no handler", name, i);
			return -EINVAL;
		}
		if (ctl_name_taken(m, i, m[i].name)) {
			VRIO_ERR("ctl %s: method %s is defined twice", name, m[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

static int ctl_new(const char *name, const struct vrio_ctl_method *methods, size_t n_methods,
		   void *arg, struct vrio_ctl **out)
{
	struct vrio_ctl *c;
	int ret;

	ret = ctl_check_methods(name, methods, n_methods);
	if (ret)
		return ret;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	snprintf(c->path, sizeof(c->path), "%s", name);
	c->fd = -1;
	c->methods = methods;
	c->n_methods = n_methods;
	c->arg = arg;
	*out = c;
	return 0;
}

int vrio_ctl_create(const struct vrio_ctl_method *methods, size_t n_methods, void *arg,
		    struct vrio_ctl **out)
{
	return ctl_new("(no socket)", methods, n_methods, arg, out);
}

/* mkdir -p of path's parent directories. */
static int ctl_mkdirs(const char *path)
{
	char dir[CTL_PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

/* 0 if the socket file at sa is stale and was removed. */
static int ctl_remove_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, ret;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A full backlog (EAGAIN) is a live server too. */
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ? -EADDRINUSE :
	      errno == ECONNREFUSED ? 0 : errno == EAGAIN ? -EADDRINUSE : -errno;
	close(fd);
	if (ret == 0 && unlink(sa->sun_path) < 0 && errno != ENOENT)
		ret = -errno;
	return ret;
}

/* Binds and listens on c->path; *what names the step that failed. */
static int ctl_listen(struct vrio_ctl *c, const char **what)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int ret;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	*what = "socket";
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	*what = "bind";
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EADDRINUSE)
			return -errno;
		ret = ctl_remove_stale(&sa);
		if (ret)
			return ret;
		if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return -errno;
	}
	/* From here on, closing the server unlinks the file. */
	*what = "stat";
	if (stat(c->path, &st) < 0)
		return -errno;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	*what = "chmod";
	if (chmod(c->path, 0600) < 0)
		return -errno;
	*what = "listen";
	return listen(c->fd, CTL_BACKLOG) < 0 ? -errno : 0;
}

static const char *ctl_open_strerror(int err)
{
	if (err == -EADDRINUSE)
		return "another server is listening on it";
	if (err == -EEXIST)
		return "the file exists and is not a socket";
	return strerror(-err);
}

int vrio_ctl_open(const char *path, const struct vrio_ctl_method *methods, size_t n_methods,
		  void *arg, struct vrio_ctl **out)
{
	const char *what = "mkdir";
	struct vrio_ctl *c;
	int ret;

	if (!path || !path[0] || strlen(path) >= CTL_PATH_MAX) {
		VRIO_ERR("ctl %s: not a usable socket path (at most %zu bytes)",
			 path ? path : "(null)", CTL_PATH_MAX - 1);
		return -ENAMETOOLONG;
	}
	ret = ctl_new(path, methods, n_methods, arg, &c);
	if (ret)
		return ret;
	ret = ctl_mkdirs(path);
	if (ret == 0)
		ret = ctl_listen(c, &what);
	if (ret) {
		VRIO_ERR("ctl %s: %s: %s", path, what, ctl_open_strerror(ret));
		vrio_ctl_close(c);
		return ret;
	}
	VRIO_INFO("ctl %s: listening", path);
	*out = c;
	return 0;
}

static void ctl_drop(struct vrio_ctl *c, unsigned i)
{
	vrio_ctl_conn_free(c->clients[i]);
	c->clients[i] = c->clients[--c->n_clients];
}

void vrio_ctl_close(struct vrio_ctl *c)
{
	struct stat st;

	if (!c)
		return;
	while (c->n_clients)
		ctl_drop(c, 0);
	if (c->fd >= 0) {
		close(c->fd);
		if (c->ino && stat(c->path, &st) == 0 && st.st_dev == c->dev &&
		    st.st_ino == c->ino)
			unlink(c->path);
	}
	free(c);
}

/* The socket layer. */

int vrio_ctl_pollfds(const struct vrio_ctl *c, struct pollfd *fds, int max)
{
	int n = 0;

	if (!c || c->fd < 0 || max <= 0)
		return 0;
	fds[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
	for (unsigned i = 0; i < c->n_clients && n < max; i++) {
		const struct vrio_ctl_conn *conn = c->clients[i];

		fds[n++] = (struct pollfd){
			.fd = conn->fd,
			.events = (short)((conn->eof || conn->err ? 0 : POLLIN) |
					  (conn->out_len > conn->out_off ? POLLOUT : 0)),
		};
	}
	return n;
}

/* Writes what the socket takes; 0 or a negative errno. */
static int ctl_flush(struct vrio_ctl_conn *conn)
{
	const char *p;
	size_t len;

	while ((p = vrio_ctl_conn_output(conn, &len)), len > 0) {
		ssize_t n = send(conn->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		vrio_ctl_conn_consume(conn, (size_t)n);
	}
	return 0;
}

static void ctl_read(struct vrio_ctl_conn *conn)
{
	char buf[CTL_READ_CHUNK];
	ssize_t n;

	n = recv(conn->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n > 0)
		vrio_ctl_conn_feed(conn, buf, (size_t)n);
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		conn->eof = true;
}

/*
 * One client's turn; false once it is to be closed. A client that shut
 * down its writing side still gets its answers; one that must be closed
 * gets one try at writing what is left.
 */
static bool ctl_client_io(struct vrio_ctl_conn *conn, short revents)
{
	size_t left;

	if ((revents & (POLLIN | POLLHUP | POLLERR)) && !conn->eof && !conn->err)
		ctl_read(conn);
	if (ctl_flush(conn) < 0)
		return false;
	vrio_ctl_conn_output(conn, &left);
	if (conn->err)
		return false;
	return !conn->eof || left > 0;
}

static bool ctl_peer_ok(int fd, int *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	*pid = cred.pid;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void ctl_add_client(struct vrio_ctl *c, int fd)
{
	static const char busy[] = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000,"
				   "\"message\":\"too many clients\"},\"id\":null}\n";
	struct vrio_ctl_conn *conn;
	int pid = 0;

	if (!ctl_peer_ok(fd, &pid)) {
		VRIO_WARN_RL("ctl %s: refusing pid %d: not root nor this server's user", c->path,
			     pid);
		close(fd);
		return;
	}
	if (c->n_clients == VRIO_CTL_MAX_CLIENTS) {
		VRIO_WARN_RL("ctl %s: refusing pid %d: %d clients already", c->path, pid,
			     VRIO_CTL_MAX_CLIENTS);
		if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			VRIO_DEBUG("ctl %s: pid %d: %s", c->path, pid, strerror(errno));
		close(fd);
		return;
	}
	conn = vrio_ctl_conn_new(c);
	if (!conn) {
		VRIO_WARN_RL("ctl %s: refusing pid %d: out of memory", c->path, pid);
		close(fd);
		return;
	}
	conn->fd = fd;
	conn->pid = pid;
	c->clients[c->n_clients++] = conn;
}

static void ctl_accept(struct vrio_ctl *c)
{
	for (int i = 0; i < CTL_ACCEPT_BURST; i++) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				VRIO_WARN_RL("ctl %s: accept: %s", c->path, strerror(errno));
			return;
		}
		ctl_add_client(c, fd);
	}
}

void vrio_ctl_process(struct vrio_ctl *c, const struct pollfd *fds, int n)
{
	bool listener = false;

	if (!c || c->fd < 0)
		return;
	/* Clients first: a slot freed here may take a new connection below. */
	for (int i = 0; i < n; i++) {
		if (!fds[i].revents || fds[i].fd < 0)
			continue;
		if (fds[i].fd == c->fd) {
			listener = true;
			continue;
		}
		for (unsigned k = 0; k < c->n_clients; k++) {
			if (c->clients[k]->fd != fds[i].fd)
				continue;
			if (!ctl_client_io(c->clients[k], fds[i].revents))
				ctl_drop(c, k);
			break;
		}
	}
	if (listener)
		ctl_accept(c);
}
