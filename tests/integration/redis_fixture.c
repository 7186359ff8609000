/*
 * redis_fixture.c - see redis_fixture.h.
 */
#include "redis_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t redis_pid;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

int redis_fixture_start(redisContext **out, int *port_out)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", port);
        redis_pid = fork();
        if (redis_pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) {
                dup2(null, 1);
                dup2(null, 2);
            }
            execlp("redis-server", "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 100; i++) {
            struct timeval tv = {1, 0};
            redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
            if (c && !c->err) {
                redisReply *r = redisCommand(c, "PING");
                bool ok = r && r->type == REDIS_REPLY_STATUS;
                freeReplyObject(r);
                if (ok) {
                    *out = c;
                    *port_out = port;
                    return 0;
                }
            }
            if (c) redisFree(c);
            int status;
            if (waitpid(redis_pid, &status, WNOHANG) == redis_pid) break; /* port taken: try another */
            usleep(50000);
        }
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
    }
    return -1;
}

void redis_fixture_stop(redisContext *c)
{
    if (c) redisFree(c);
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
}

void redis_fixture_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) fail_msg("%s: no reply (%s)", fmt, c->errstr);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("%s: %s", fmt, r->str);
    freeReplyObject(r);
}
