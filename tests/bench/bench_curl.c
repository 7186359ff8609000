/*
 * bench_curl.c - the reference for scripts/bench.sh: a plain libcurl multi
 * loop, one thread, a fixed number of POSTs in flight, against the same
 * local server herald's webhook plugin talks to. It prints messages per
 * second, and its own CPU time (user + system) per request; herald's rate
 * divided by this one is the figure of merit.
 * Usage: bench_curl URL COUNT [IN_FLIGHT (64)] [BODY_BYTES (600)]
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"

static size_t sink(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}


int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_curl URL COUNT [IN_FLIGHT] [BODY_BYTES]\n");
        return 2;
    }
    const char *url = argv[1];
    long count = strtol(argv[2], NULL, 10);
    int inflight = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 64;
    size_t body_len = argc > 4 ? (size_t)strtol(argv[4], NULL, 10) : 600;
    char *body = malloc(body_len + 1);
    memset(body, 'x', body_len);
    body[0] = '{';
    body[body_len - 1] = '}';
    body[body_len] = '\0';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    long started = 0, done = 0, failed = 0;
    double t0 = now_s();
    CURL **pool = calloc((size_t)inflight, sizeof(CURL *));
    for (int i = 0; i < inflight; i++) {
        pool[i] = curl_easy_init();
        curl_easy_setopt(pool[i], CURLOPT_URL, url);
        curl_easy_setopt(pool[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(pool[i], CURLOPT_POSTFIELDSIZE, (long)body_len);
        curl_easy_setopt(pool[i], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(pool[i], CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(pool[i], CURLOPT_NOSIGNAL, 1L);
        if (started < count) {
            curl_multi_add_handle(multi, pool[i]);
            started++;
        }
    }
    int running = 1;
    while (done < count) {
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status / 100 != 2) failed++;
            done++;
            curl_multi_remove_handle(multi, e);
            if (started < count) {
                curl_multi_add_handle(multi, e);
                started++;
            }
        }
        if (done < count) curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double secs = now_s() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    printf("reference: %ld requests (%d in flight, %zu-byte body) in %.2f s = %.0f req/s, %ld failed, "
           "cpu %.1f us/request\n",
           count, inflight, body_len, secs, (double)count / secs, failed, cpu * 1e6 / (double)count);
    for (int i = 0; i < inflight; i++) curl_easy_cleanup(pool[i]);
    free(pool);
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    free(body);
    return failed ? 1 : 0;
}
