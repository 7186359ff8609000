/*
 * bench_seal.c - what encryption at rest costs per message.
 *
 * A benchmark program, not a test: it prints figures. It seals 1024
 * people shaped like scripts/bench.sh's (an address, a phone number, five
 * attributes) as the daemon stores them, then measures on one core:
 *   - the decryption alone (seal_open of the person's one envelope: what
 *     encryption adds to each message),
 *   - the whole read of a stored person (store_person_open: profile parse,
 *     decryption, attributes JSON), against the same person stored in clear,
 *   - the sealing of a write (store_person_seal),
 *   - the read a campaign's checks make (store_person_read: the flags and
 *     index members beside the envelope, which stays sealed).
 * Each figure is the median of several repetitions (the machines are noisy).
 * Usage: bench_seal [operations_per_rep (default 200000)] [reps (default 5)]
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seal.h"
#include "store_person.h"

#include "bench_util.h"

#define NPEOPLE 1024



struct stored {
    char id[16];
    redisReply profile, clear, field[STORE_SEALED_NFIELDS];
    const redisReply *sealed[STORE_SEALED_NFIELDS];
    struct strbuf env; /* the envelope whole, for seal_open alone */
};

static void str_reply(redisReply *r, const char *s, size_t n)
{
    memset(r, 0, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = malloc(n + 1);
    memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
}

int main(int argc, char **argv)
{
    long ops = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    int reps = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    if (ops < 1 || reps < 1 || reps > 99) {
        fprintf(stderr, "usage: bench_seal [operations_per_rep] [reps 1..99]\n");
        return 2;
    }
    const char *keytext = "bench1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    struct seal_keys keys;
    char err[256];
    if (seal_keys_parse(keytext, strlen(keytext), "bench", &keys, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    static struct stored st[NPEOPLE];
    struct profile p;
    struct store_person_form form;
    store_person_form_init(&form);
    unsigned char ikey[ADDRINDEX_KEY_LEN];
    memset(ikey, 7, sizeof(ikey));
    for (int i = 0; i < NPEOPLE; i++) {
        char json[512];
        snprintf(
            json, sizeof(json),
            "{\"id\":\"p%07d\",\"email\":\"person.number%07d@example.com\",\"phone\":\"+4670%07d\","
            "\"tz\":\"Europe/Stockholm\",\"locale\":\"sv\",\"channels\":[\"email\",\"sms\"],"
            "\"attributes\":{\"first_name\":\"Person%d\",\"last_name\":\"Svensson\",\"city\":\"Gothenburg\","
            "\"plan\":\"gold\",\"age\":41}}",
            i, i, i, i);
        if (profile_parse(json, strlen(json), &p, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        snprintf(st[i].id, sizeof(st[i].id), "%s", p.id);
        store_person_seal(NULL, ikey, &p, &form);
        str_reply(&st[i].clear, form.profile.buf, form.profile.len);
        store_person_seal(&keys, ikey, &p, &form);
        str_reply(&st[i].profile, form.profile.buf, form.profile.len);
        strbuf_init(&st[i].env);
        for (size_t f = 0; f < STORE_SEALED_NFIELDS; f++) {
            st[i].sealed[f] = NULL;
            if (!form.set[f]) continue;
            str_reply(&st[i].field[f], form.sealed[f].buf, form.sealed[f].len);
            st[i].sealed[f] = &st[i].field[f];
            if (f < STORE_SEALED_PIECES) strbuf_add(&st[i].env, form.sealed[f].buf, form.sealed[f].len);
        }
        profile_free(&p);
    }
    const redisReply *none[STORE_SEALED_NFIELDS] = {0};
    double t_open[99], t_read[99], t_clear[99], t_seal[99], t_check[99];
    struct strbuf pt, kept;
    strbuf_init(&pt);
    strbuf_init(&kept);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        for (long i = 0; i < ops; i++) {
            struct stored *s = &st[i % NPEOPLE];
            if (seal_open(&keys, s->id, STORE_SEALED_AD, s->env.buf, s->env.len, &pt, err, sizeof(err)) < 0)
                abort();
        }
        double t1 = now_s();
        for (long i = 0; i < ops; i++) {
            struct stored *s = &st[i % NPEOPLE];
            if (store_person_open(&keys, s->id, &s->profile, s->sealed, &p, err, sizeof(err)) != 1 ||
                p.undecryptable)
                abort();
            profile_free(&p);
        }
        double t2 = now_s();
        for (long i = 0; i < ops; i++) {
            struct stored *s = &st[i % NPEOPLE];
            if (store_person_open(&keys, s->id, &s->clear, none, &p, err, sizeof(err)) != 1) abort();
            profile_free(&p);
        }
        double t3 = now_s();
        long nseal = ops / 4 + 1;
        for (long i = 0; i < nseal; i++) {
            struct stored *s = &st[i % NPEOPLE];
            if (store_person_open(&keys, s->id, &s->profile, s->sealed, &p, err, sizeof(err)) != 1) abort();
            store_person_seal(&keys, ikey, &p, &form);
            profile_free(&p);
        }
        double t4 = now_s();
        for (long i = 0; i < ops; i++) {
            struct stored *s = &st[i % NPEOPLE];
            if (store_person_read(&keys, ikey, s->id, &s->profile, s->sealed, false, &p, &kept, err, sizeof(err)) !=
                    1 ||
                !kept.len)
                abort();
            profile_free(&p);
        }
        double t5 = now_s();
        t_check[r] = (t5 - t4) / (double)ops * 1e6;
        t_open[r] = (t1 - t0) / (double)ops * 1e6;
        t_read[r] = (t2 - t1) / (double)ops * 1e6;
        t_clear[r] = (t3 - t2) / (double)ops * 1e6;
        t_seal[r] = (t4 - t3) / (double)nseal * 1e6 - t_read[r];
    }
    double open = median(t_open, reps), read = median(t_read, reps), clear = median(t_clear, reps);
    printf("decryption per message: %.2f us (AES-256-GCM of one person's %zu-byte envelope; goal < 2 us)\n", open,
           st[0].env.len);
    printf("stored person read: %.2f us encrypted, %.2f us in clear (+%.2f us)\n", read, clear, read - clear);
    printf("sealing a write: %.2f us\n", median(t_seal, reps));
    printf("stored person read for the checks (envelope left sealed, flags and members read): %.2f us\n",
           median(t_check, reps));
    strbuf_free(&pt);
    strbuf_free(&kept);
    store_person_form_free(&form);
    seal_keys_free(&keys);
    return 0;
}
