/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A pcap writer that never makes its producer wait on the disk: frames go
 * into a bounded ring of pcap records (header and bytes, in the file's
 * format) on the producer's thread, and a writer thread of its own appends
 * them to the file. A frame that does not fit in the ring is refused, for
 * the caller to count.
 *
 * The files: classic libpcap format, nanosecond timestamps (magic
 * 0xa1b23c4d), LINKTYPE_ETHERNET, each frame cut at snaplen. With a
 * max_size, a file that would grow past it is closed and the next one
 * started, with its own header: PATH, then PATH.1, PATH.2, ... (tcpdump
 * -C's numbering, never renamed, so a reader may follow along). Each file
 * is readable on its own by tcpdump and Wireshark.
 *
 * Threads: one producer at a time (ios_pcap_add); ios_pcap_set from any
 * thread; open and close on a thread that may wait (close joins the writer
 * after it has written everything queued).
 */
#ifndef VRIO_IOSERVER_PCAP_H
#define VRIO_IOSERVER_PCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IOS_PCAP_MAGIC_NS	0xa1b23c4du
#define IOS_PCAP_LINKTYPE_ETHERNET	1u
#define IOS_PCAP_HDR_LEN	24u
#define IOS_PCAP_REC_LEN	16u
#define IOS_PCAP_RING_BYTES	(4u << 20)

struct ios_pcap;

struct ios_pcap_opts {
	const char *path;
	unsigned snaplen;		/* bytes kept of each frame, > 0 */
	uint64_t max_size;		/* bytes a file may reach; 0: one file */
	size_t ring_bytes;		/* a power of two; 0: IOS_PCAP_RING_BYTES */
};

struct ios_pcap_stats {
	uint64_t frames, bytes;		/* written to files, records included */
	uint64_t files;			/* opened (the first included) */
	uint64_t errors;		/* writes or opens that failed */
	uint64_t lost;			/* frames queued that no file took */
	uint64_t queued;		/* bytes in the ring now */
};

/* Opens (truncates) the first file and starts the writer. -errno, and why
 * (with the path). */
int ios_pcap_open(const struct ios_pcap_opts *o, struct ios_pcap **out, char *why, size_t n);
/* Writes what is queued, stops the writer, closes the file. */
void ios_pcap_close(struct ios_pcap *p);

/* The producer: a frame seen at ts_ns (CLOCK_REALTIME). False if the ring
 * has no room for it. */
bool ios_pcap_add(struct ios_pcap *p, const uint8_t *frame, uint32_t len, uint64_t ts_ns);
/* New limits: snaplen from the next frame added, max_size from the next
 * record written. A frame longer than the open file's snaplen starts a
 * new file, whose header says the new one. */
void ios_pcap_set(struct ios_pcap *p, unsigned snaplen, uint64_t max_size);

void ios_pcap_get_stats(const struct ios_pcap *p, struct ios_pcap_stats *st);

#endif
