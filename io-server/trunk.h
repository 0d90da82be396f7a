/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Trunks: the links that join the switches of a network spanning several
 * io-servers (topology.h, a network's span). One trunk per peer io-server
 * that shares at least one network with this one, carrying all of them;
 * in each such network's switch the trunk is a port (switch.h) whose
 * other end is the peer's switch of the same network.
 *
 * Wire: the io-servers' own transport and listener. The io-server whose
 * name sorts first dials the other's listen address (its stack, with the
 * reliable layer where the stack has one) and sends a Hello naming
 * itself; the peer's session sees a node that is an io-server it trunks
 * with, hands the connection over (session.c) and answers with its own
 * Hello. Then both send PKT frames whose `dev` is the network's id
 * (topology.h): a frame for an id the trunk does not carry is dropped
 * and counted, anything else malformed closes the trunk. Both sides send
 * Heartbeats when idle and declare the trunk dead after the io-server's
 * dead_after of silence.
 *
 * Authentication. With the rack's trunk_key_file, the two Hellos and an
 * Auth are the hosts' challenge-response (proto/auth.h), the dialer in
 * the host's place: its Hello carries a nonce; the acceptor answers with
 * its nonce and proof and waits, sending nothing else, for the dialer's
 * Auth; the dialer checks that proof before it sends its own and before
 * it takes a frame. A side that cannot check or is not satisfied sends an
 * Error and closes: counted (auth_failures) and logged, rate-limited,
 * with the peer's address; the network stays split. Without the key file
 * the Hellos carry no nonce and both daemons warn at start.
 *
 * Threads. The control thread creates the trunks (each on one of the
 * reactors that never park) and, for each trunk this side dials, a dialer
 * thread: a peer that drops our SYNs holds a dial for the transport's
 * whole connect timeout, and the control thread has hosts to accept and a
 * control socket to answer meanwhile. The dialer dials while the trunk
 * has no connection and posts each new one to the trunk's reactor; at a
 * stop (the daemon's, or a reload's that retires the trunk) it gives up
 * the dial under way (the transport's cancel_fd), closes a connection
 * made after that, and is joined before the reactors are, or before the
 * trunk is freed. The trunk's reactor alone owns the connection, its state,
 * the networks it carries (nets[]) and its ports' placement: a port names
 * the trunk's reactor while the trunk is up and no reactor while it is
 * down, so the switches drop (and count, as port_down) what they would
 * send to the other half of a split network. Counters the metrics thread
 * reads are written by one reactor each, or are atomic adds.
 *
 * Reloads (ios_trunks_reload). What a trunk carries follows the spans of
 * the new file (topology_diff.h's trunk changes), by messages to its
 * reactor, so a trunk whose networks do not change never notices:
 *   - a network the trunk starts carrying gets its port in the network's
 *     switch, then the reactor adds it to nets[] (and places the port if
 *     the trunk is up); a peer that has no trunk yet gets a new one,
 *     dialled or awaited as at start;
 *   - one it stops carrying leaves nets[] on the reactor first (the
 *     peer's frames for it are counted as unknown_network from then on),
 *     then its port leaves the switch;
 *   - a trunk left with no network leaves the table, its reactor closes
 *     its connection and forgets its poller, and it is freed once every
 *     reactor has passed a barrier (nothing can name it any more).
 * The control thread keeps its own list of what each trunk carries
 * (carried[]), which the metrics thread reads under srv->lock.
 */
#ifndef VRIO_IOSERVER_TRUNK_H
#define VRIO_IOSERVER_TRUNK_H

#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "heartbeat.h"
#include "reactor.h"
#include "transport.h"

struct ios_server;
struct ios_network;
struct ios_port;
struct ios_session;
struct vrio_conn;
struct vrio_key;
struct vrio_mw;
struct vrio_topology;
struct vrio_topo_diff;

#define IOS_TRUNK_DIAL_NS	(500ull * 1000000ull)	/* between two dials */
#define IOS_MAX_TRUNKS		64u	/* peer io-servers trunked with at once */

enum ios_trunk_state {
	IOS_TRUNK_DOWN,		/* no connection */
	IOS_TRUNK_HELLO,	/* dialled, the peer's Hello not yet in */
	IOS_TRUNK_UP,
};

enum ios_trunk_drop {
	IOS_TRUNK_DROP_UNKNOWN_NET,	/* from the peer, for a network not trunked here */
	IOS_TRUNK_DROP_SEND,		/* the connection refused the frame (queue full) */
	IOS_TRUNK_DROP_UNACKED,		/* in the connection, unacknowledged, when it died */
	IOS_TRUNK_NR_DROPS,
};

struct ios_trunk_net {
	uint32_t id;			/* the network's id on the wire */
	struct ios_network *net;
	struct ios_port *port;		/* the trunk's port in that switch */
};

/* The control thread's record of a network the trunk carries, with the
 * message that tells the reactor (one at a time: a barrier passes before
 * it is posted again). */
struct ios_trunk_carry {
	struct ios_trunk_net tn;
	struct ios_trunk *t;
	struct ios_msg msg;
	bool dropping;			/* a reload removes it */
};

struct ios_trunk {
	struct ios_server *srv;
	char peer[64];			/* the peer io-server's name */
	char addr[128];			/* its listen address (control thread; under
					 * srv->lock for the dialer) */
	bool dialer;			/* this side dials */
	struct ios_reactor *r;		/* the trunk's reactor */
	char label[144];		/* peer=".." */

	/* The trunk's reactor (the control thread's until it is started). */
	struct ios_trunk_net nets[256];
	unsigned n_nets;
	struct vrio_conn *conn;
	enum ios_trunk_state state;
	struct vrio_hb hb;
	struct ios_poller poller;
	struct ios_evsrc ev;
	bool sent;			/* frames queued since the last flush */
	bool flush_pending;
	char close_reason[160];
	/* Authentication (proto/auth.h) of the current connection. */
	const struct vrio_key *key;	/* read at adopt; NULL: none */
	bool auth_pending;		/* accepted: the dialer's Auth is due */
	uint8_t nonce[32];		/* ours: VRIO_AUTH_NONCE_LEN */
	uint8_t auth_expect[32];	/* the dialer's proof: VRIO_AUTH_PROOF_LEN */

	/* Control thread; carried[] also the metrics thread's, under srv->lock. */
	struct ios_trunk_carry carried[256];
	unsigned n_carried;
	unsigned slot;			/* in srv->trunks */
	bool started;			/* its poller is registered */
	struct ios_msg stop_msg;
	pthread_t dial_thread;
	bool dial_started;
	int dial_stopfd;		/* eventfd, readable once its stop began; -1: none */
	/* The peer's listener speaks TLS (its tls: entry, fixed while it
	 * runs): the dialer's client side, set at creation. */
	bool tls, tls_psk;
	char *tls_ca;			/* cert mode: the CA its certificate is checked against */
	/* The dialer thread. */
	unsigned dial_failures;		/* in a row, for one log line per streak */
	/* What it dials through: the io-server's transport, faults and
	 * reliable layer, with the client side of the peer's TLS (never the
	 * listener's server side), made with dial_key (psk: the PSK comes
	 * from the trunk key, so a new key makes a new context). */
	struct vrio_stack dial_stack;
	const struct vrio_key *dial_key;
	bool dial_tls_failed;		/* that context could not be made */

	int linked;			/* atomic: a connection is posted or held */
	int up;				/* atomic: state == UP */
	struct {
		uint64_t connects, downs;	/* atomic */
		uint64_t frames_tx, bytes_tx, frames_rx, bytes_rx;	/* the reactor */
		uint64_t drops[IOS_TRUNK_NR_DROPS];	/* the reactor */
		uint64_t auth_failures;		/* the reactor */
		/* port_down drops of the ports of networks it no longer
		 * carries (control thread, under srv->lock). */
		uint64_t down_gone;
	} st;
};

extern const char *const ios_trunk_drop_names[IOS_TRUNK_NR_DROPS];

/* Control thread. */
/* Creates the trunks the topology asks of this io-server (and the switches
 * of the networks they carry) and starts their pollers. */
int ios_trunks_open(struct ios_server *srv);
/* A reload, step 1: refused (-ENOSPC, why set) if the trunks it would add
 * do not fit in the table. */
int ios_trunks_reload_check(struct ios_server *srv, const struct vrio_topo_diff *diff,
			    const char *path, char *why, size_t n);
/* A reload, step 3 (nothing fails: what cannot be had is logged and the
 * network stays split there): the trunk changes of diff, against the new
 * file t, before it replaces the old one. */
void ios_trunks_reload(struct ios_server *srv, const struct vrio_topology *t,
		       const struct vrio_topo_diff *diff);
/* The reactors run: starts the dialers, and those of the trunks reloads
 * add from now on. */
int ios_trunks_start(struct ios_server *srv);
/* Gives up the dials under way and joins the dialers, before the reactors
 * are joined: nothing is posted to them after. Idempotent. */
void ios_trunks_stop(struct ios_server *srv);
/* Reactors joined: stops the dialers if need be, closes the connections
 * and frees. */
void ios_trunks_close(struct ios_server *srv);
/* The trunk to io-server `node`, or NULL. */
struct ios_trunk *ios_trunk_find(struct ios_server *srv, const char *node);

/* A session's reactor: the peer's Hello came in on an accepted
 * connection, which the session gives up; the trunk's reactor takes it,
 * with the nonce of that Hello (nonce_len as it came; 0: none). */
int ios_trunk_accept(struct ios_trunk *t, struct vrio_conn *c, const uint8_t *nonce,
		     size_t nonce_len);

/* The trunk's reactor: a frame from the switch for the peer. */
void ios_trunk_send(struct ios_reactor *r, struct ios_port *p, const struct vrio_pkt_wire *vh,
		    const uint8_t *frame, uint32_t len);

/* Metrics thread. */
void ios_trunks_metrics(const struct ios_server *srv, struct vrio_mw *w);

#endif
