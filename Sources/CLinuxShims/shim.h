// Linux headers Glibc's Swift module leaves out: epoll and eventfd.
// No _GNU_SOURCE here: it changes struct layouts (fd_set) and clashes with the Glibc module.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

// accept4 is declared only under _GNU_SOURCE; declare it ourselves (glibc has exported it since 2.10).
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

static inline int es_accept_nonblocking(int fd) {
    return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

// SO_PEERCRED's struct ucred is only declared under _GNU_SOURCE; read it into our own struct.
struct es_peer_credentials { int pid; unsigned int uid; unsigned int gid; };

static inline int es_peer_credentials(int fd, struct es_peer_credentials *out) {
    socklen_t len = sizeof(*out);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, out, &len);
}

// Hands freed heap pages back to the kernel (glibc keeps them otherwise).
#include <malloc.h>
static inline void es_trim_heap(void) { malloc_trim(0); }

// Names the calling thread for the kernel (top -H, perf, /proc/…/comm): at most 15 bytes are kept.
// prctl instead of pthread_setname_np, which is declared only under _GNU_SOURCE.
#include <sys/prctl.h>
static inline void es_set_thread_name(const char *name) { prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }
