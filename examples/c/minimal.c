/*
 * The smallest useful C program with Loupe: build an engine from a configuration file, inspect one 8-bit gray
 * image held in memory (here a synthetic one, with a dark blob), print the verdict and regions, write an overlay.
 *
 *   cargo build --release -p loupe-ffi
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic -I include examples/c/minimal.c -o minimal \
 *      -L target/release -lloupe -Wl,-rpath,"$PWD/target/release"
 *   ./minimal loupe.toml overlay.png
 */
#include <stdio.h>
#include <stdlib.h>

#include "loupe.h"

/* Prints the failed call's status and message and jumps to cleanup. */
#define CHECK(call)                                                                        \
    do {                                                                                   \
        LoupeStatus status_ = (call);                                                      \
        if (status_ != LOUPE_STATUS_OK) {                                                  \
            fprintf(stderr, "%s: %s\n", loupe_status_name((int32_t)status_), loupe_last_error()); \
            goto cleanup;                                                                  \
        }                                                                                  \
    } while (0)

int main(int argc, char **argv) {
    enum { W = 96, H = 80 };
    static uint8_t pixels[H][W];
    LoupeEngine *engine = NULL;
    LoupeSession *session = NULL;
    LoupeResult *result = NULL;
    int exit_code = 1;
    float score = 0.0f;
    bool anomalous = false;
    const char *type = NULL;
    size_t regions = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: %s CONFIG OVERLAY_PNG\n", argv[0]);
        return 2;
    }
    /* A textured gray part with a dark blob: any 8-bit buffer works the same way. */
    for (int y = 0; y < H; ++y) {
        for (int x = 0; x < W; ++x) {
            int dx = x - 60, dy = y - 30;
            pixels[y][x] = (dx * dx + dy * dy < 64) ? 20 : (uint8_t)(140 + ((x * 7 + y * 13) % 23));
        }
    }
    LoupeImageView view = {&pixels[0][0], W, H, W, LOUPE_FORMAT_GRAY8};

    CHECK(loupe_engine_create_from_file(argv[1], &engine));
    CHECK(loupe_session_create(engine, &session));
    CHECK(loupe_session_inspect(session, &view, &result));
    CHECK(loupe_result_score(result, &score));
    CHECK(loupe_result_is_anomalous(result, &anomalous));
    CHECK(loupe_result_image_type(result, &type));
    CHECK(loupe_result_region_count(result, &regions));
    printf("score=%.9g label=%s type=%s regions=%zu\n", score, anomalous ? "anomalous" : "normal", type, regions);
    for (size_t i = 0; i < regions; ++i) {
        LoupeRegion r;
        CHECK(loupe_result_region(result, i, &r));
        printf("  region %zu bbox=%u,%u,%u,%u area=%u type=%s max=%.9g\n", i, r.x, r.y, r.width, r.height, r.area,
               r.type_name, r.max_score);
    }
    CHECK(loupe_result_write_overlay(result, &view, argv[2]));
    exit_code = 0;

cleanup:
    /* Destroying NULL is a no-op, so every handle is released the same way. */
    loupe_result_destroy(result);
    loupe_session_destroy(session);
    loupe_engine_destroy(engine);
    return exit_code;
}
