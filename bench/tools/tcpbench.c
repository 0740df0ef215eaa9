// SPDX-License-Identifier: Apache-2.0
/*
 * Real TCP through a load balancer, for bench/attach.ts. Plain sockets with
 * the kernel's defaults (offloads, GSO), as a pod or a kind node sends.
 *
 *   tcpbench serve STREAM_PORT CPS_PORT
 *       STREAM_PORT: read every connection to EOF, discard.
 *       CPS_PORT:    accept and close at once (the server closes first, so
 *                    the client keeps no TIME_WAIT and never runs out of ports).
 *   tcpbench stream HOST PORT SECONDS     one connection, writes for SECONDS;
 *                                         prints bytes written
 *   tcpbench cps HOST PORT SECONDS THREADS connect / read EOF / close in a loop
 *                                         per thread; prints completed
 *                                         connections and failures
 * Every loop is bounded by SECONDS; every socket call by a 2 s timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 2 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int listen_on(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1024)) {
		perror("listen");
		exit(1);
	}
	return fd;
}

static void *drain(void *arg)
{
	int fd = (int)(long)arg;
	static __thread char buf[1 << 16];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	return NULL;
}

static void *serve_stream(void *arg)
{
	int lfd = listen_on((int)(long)arg);

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;

		if (fd < 0)
			continue;
		pthread_create(&t, NULL, drain, (void *)(long)fd);
		pthread_detach(t);
	}
	return NULL;
}

static void serve_cps(int port)
{
	int lfd = listen_on(port);

	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd >= 0)
			close(fd);
	}
}

static int connect_to(const char *host, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, host, &a.sin_addr);
	set_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

struct cps_arg {
	const char *host;
	int port;
	double until;
	long done, failed;
};

static void *cps_loop(void *p)
{
	struct cps_arg *a = p;
	char c;

	while (now_s() < a->until) {
		int fd = connect_to(a->host, a->port);

		if (fd < 0) {
			a->failed++;
			continue;
		}
		/* The server closes first: EOF means the whole handshake went through the LB and back. */
		if (read(fd, &c, 1) == 0)
			a->done++;
		else
			a->failed++;
		close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "serve")) {
		pthread_t t;

		pthread_create(&t, NULL, serve_stream, (void *)(long)atoi(argv[2]));
		setvbuf(stdout, NULL, _IONBF, 0);
		printf("listening\n");
		serve_cps(atoi(argv[3]));
	} else if (argc == 5 && !strcmp(argv[1], "stream")) {
		static char buf[1 << 17];
		double until = now_s() + atof(argv[4]);
		long long sent = 0;
		int fd = connect_to(argv[2], atoi(argv[3]));

		if (fd < 0) {
			perror("connect");
			return 1;
		}
		while (now_s() < until) {
			ssize_t n = write(fd, buf, sizeof(buf));

			if (n <= 0) {
				perror("write");
				return 1;
			}
			sent += n;
		}
		close(fd);
		printf("%lld\n", sent);
	} else if (argc == 6 && !strcmp(argv[1], "cps")) {
		int threads = atoi(argv[5]), i;
		struct cps_arg args[16];
		pthread_t t[16];
		long done = 0, failed = 0;

		if (threads < 1 || threads > 16)
			return 2;
		for (i = 0; i < threads; i++) {
			args[i] = (struct cps_arg){ argv[2], atoi(argv[3]), now_s() + atof(argv[4]), 0, 0 };
			pthread_create(&t[i], NULL, cps_loop, &args[i]);
		}
		for (i = 0; i < threads; i++) {
			pthread_join(t[i], NULL);
			done += args[i].done;
			failed += args[i].failed;
		}
		printf("%ld %ld\n", done, failed);
	} else {
		fprintf(stderr, "usage: tcpbench serve SP CP | stream HOST PORT SECONDS | cps HOST PORT SECONDS THREADS\n");
		return 2;
	}
	return 0;
}
