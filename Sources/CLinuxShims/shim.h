// Linux headers Glibc's Swift module leaves out: epoll, eventfd, peer credentials.
#define _GNU_SOURCE 1
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

// accept4's address argument is a transparent union under _GNU_SOURCE, which Swift cannot pass nil to.
static inline int es_accept_nonblocking(int fd) {
    return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
