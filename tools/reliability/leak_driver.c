/*
 * Leak driver for the C ABI: one engine, ROUNDS rounds over the given PNG images, every handle released at the
 * end. Run under valgrind memcheck or AddressSanitizer/LeakSanitizer with two round counts (N and 4N): nothing may
 * be lost, and what is still reachable at exit must not grow with the number of inspections.
 *
 * Each round makes a session and, per image: loupe_session_inspect, every result accessor, loupe_result_to_json,
 * loupe_result_rethreshold, loupe_session_inspect_ex (one class, skip bits), one deliberate failure (NULL image:
 * the thread's error message); then one loupe_session_inspect_batch of all images, a golden-sample profile from
 * the images (loupe_profile_create, loupe_session_inspect_with_profile, loupe_profile_save/_load into OUT_DIR),
 * a mutual window (loupe_session_set_mutual) filled and scored, one overlay PNG (loupe_result_write_overlay), and
 * destroys the session.
 *
 *   usage: leak_driver [--engine-per-round] CONFIG|- ROUNDS OUT_DIR IMAGE.png...
 *     CONFIG  a Loupe configuration file, or `-` for the embedded default model (loupe_engine_create_default)
 *     --engine-per-round  create and destroy the engine in every round (default: one engine for all rounds)
 *
 * Prints `inspections=N checksum=X`; exit status 0 on success, 1 on any failed call.
 * Build (tools/reliability/sanitizers.sh does it):
 *   cc -std=c11 -O1 -g -I include tools/reliability/leak_driver.c -o leak_driver -L LIBDIR -lloupe -lpng \
 *      -Wl,-rpath,LIBDIR
 */
#include <png.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loupe.h"

#define CHECK(call)                                                                                     \
    do {                                                                                                \
        LoupeStatus status_ = (call);                                                                   \
        if (status_ != LOUPE_STATUS_OK) {                                                               \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,                           \
                    loupe_status_name((int32_t)status_), loupe_last_error());                           \
            exit(1);                                                                                    \
        }                                                                                               \
    } while (0)

typedef struct {
    uint8_t *pixels;
    LoupeImageView view;
} Image;

/* Decodes a PNG with libpng's simplified API into gray, RGB or RGBA bytes (as the file holds them). */
static Image read_png(const char *path) {
    png_image png;
    memset(&png, 0, sizeof png);
    png.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&png, path)) {
        fprintf(stderr, "cannot read %s: %s\n", path, png.message);
        exit(1);
    }
    uint32_t format;
    if (png.format & PNG_FORMAT_FLAG_COLOR) {
        png.format = (png.format & PNG_FORMAT_FLAG_ALPHA) ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
        format = (png.format & PNG_FORMAT_FLAG_ALPHA) ? LOUPE_FORMAT_RGBA8 : LOUPE_FORMAT_RGB8;
    } else {
        png.format = PNG_FORMAT_GRAY;
        format = LOUPE_FORMAT_GRAY8;
    }
    Image image;
    image.pixels = malloc(PNG_IMAGE_SIZE(png));
    if (image.pixels == NULL || !png_image_finish_read(&png, NULL, image.pixels, 0, NULL)) {
        fprintf(stderr, "cannot decode %s: %s\n", path, png.message);
        exit(1);
    }
    image.view = (LoupeImageView){image.pixels, png.width, png.height, PNG_IMAGE_ROW_STRIDE(png), format};
    png_image_free(&png);
    return image;
}

static double checksum = 0.0;
static size_t inspections = 0;

/* Reads every accessor of `r` (and touches every map byte), re-thresholds it and renders its JSON. */
static void read_result(const LoupeResult *r, const char *name) {
    float score, normalized, range, ti, tp, p;
    bool anomalous;
    const char *text;
    size_t n;
    CHECK(loupe_result_score(r, &score));
    CHECK(loupe_result_normalized_score(r, &normalized));
    CHECK(loupe_result_map_range(r, &range));
    CHECK(loupe_result_is_anomalous(r, &anomalous));
    CHECK(loupe_result_thresholds(r, &ti, &tp));
    CHECK(loupe_result_image_type(r, &text));
    checksum += score + normalized + (double)strlen(text);
    CHECK(loupe_result_class_count(r, &n));
    for (size_t i = 0; i < n; ++i) {
        CHECK(loupe_result_class_name(r, i, &text));
        CHECK(loupe_result_class_probability(r, i, &p));
        checksum += p + (double)strlen(text);
    }
    LoupeEvidence e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    CHECK(loupe_result_evidence(r, &e));
    checksum += e.mode + e.pool + e.text_score;
    uint32_t w, h;
    const float *map;
    if (loupe_result_anomaly_map(r, &map, &w, &h) == LOUPE_STATUS_OK) {
        for (size_t i = 0; i < (size_t)w * h; ++i) checksum += map[i] * 1e-6;
    }
    const uint8_t *mask;
    CHECK(loupe_result_mask(r, &mask, &w, &h));
    for (size_t i = 0; i < (size_t)w * h; ++i) checksum += mask[i] * 1e-6;
    const uint16_t *types;
    if (loupe_result_type_map(r, &types, &w, &h) == LOUPE_STATUS_OK) {
        for (size_t i = 0; i < (size_t)w * h; ++i) checksum += types[i] * 1e-6;
    }
    CHECK(loupe_result_region_count(r, &n));
    for (size_t i = 0; i < n; ++i) {
        LoupeRegion reg;
        CHECK(loupe_result_region(r, i, &reg));
        checksum += reg.area + reg.max_score + (reg.type_name ? (double)strlen(reg.type_name) : 0.0);
    }
    size_t len = 0;
    CHECK(loupe_result_to_json(r, name, NULL, 0, &len));
    char *json = malloc(len + 1);
    CHECK(loupe_result_to_json(r, name, json, len + 1, &len));
    checksum += (double)strlen(json);
    free(json);
}

static void rethreshold(const LoupeResult *r, float pixel_threshold) {
    LoupeInspectOptions o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.set = LOUPE_OPTION_PIXEL_THRESHOLD | LOUPE_OPTION_SEGMENT;
    o.pixel_threshold = pixel_threshold;
    o.segment = LOUPE_SEGMENT_ALL;
    LoupeResult *again = NULL;
    CHECK(loupe_result_rethreshold(r, &o, &again));
    read_result(again, "again");
    CHECK(loupe_result_destroy(again));
}

static LoupeEngine *create_engine(const char *config) {
    LoupeEngine *engine = NULL;
    if (strcmp(config, "-") == 0) {
        CHECK(loupe_engine_create_default(&engine));
    } else {
        CHECK(loupe_engine_create_from_file(config, &engine));
    }
    return engine;
}

int main(int argc, char **argv) {
    bool engine_per_round = argc > 1 && strcmp(argv[1], "--engine-per-round") == 0;
    if (engine_per_round) {
        --argc;
        ++argv;
    }
    if (argc < 5) {
        fprintf(stderr, "usage: leak_driver [--engine-per-round] CONFIG|- ROUNDS OUT_DIR IMAGE.png...\n");
        return 2;
    }
    const int rounds = atoi(argv[2]);
    const char *out_dir = argv[3];
    const size_t count = (size_t)(argc - 4);
    Image *images = calloc(count, sizeof *images);
    LoupeImageView *views = calloc(count, sizeof *views);
    LoupeResult **batch = calloc(count, sizeof *batch);
    for (size_t i = 0; i < count; ++i) {
        images[i] = read_png(argv[4 + i]);
        views[i] = images[i].view;
    }

    LoupeEngine *engine = create_engine(argv[1]);
    LoupeEngineInfo info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(loupe_engine_info(engine, &info));
    printf("engine model=%s input=%ux%u classes=%u\n", info.model_name, info.input_width, info.input_height,
           info.class_count);
    size_t classes;
    CHECK(loupe_engine_class_count(engine, &classes));
    const char *first_defect = NULL;
    CHECK(loupe_engine_class_name(engine, classes > 1 ? 1 : 0, &first_defect));

    char path[4096];
    snprintf(path, sizeof path, "%s/leak_driver_profile.safetensors", out_dir);
    char overlay[4096];
    snprintf(overlay, sizeof overlay, "%s/leak_driver_overlay.png", out_dir);

    for (int round = 0; round < rounds; ++round) {
        if (engine_per_round && round > 0) {
            CHECK(loupe_engine_destroy(engine));
            engine = create_engine(argv[1]);
            CHECK(loupe_engine_class_name(engine, classes > 1 ? 1 : 0, &first_defect));
        }
        LoupeSession *session = NULL;
        CHECK(loupe_session_create(engine, &session));
        for (size_t i = 0; i < count; ++i) {
            LoupeResult *r = NULL;
            CHECK(loupe_session_inspect(session, &views[i], &r));
            ++inspections;
            read_result(r, argv[4 + i]);
            rethreshold(r, 0.5f);
            if (i == 0) CHECK(loupe_result_write_overlay(r, &views[i], overlay));
            CHECK(loupe_result_destroy(r));

            LoupeInspectOptions o;
            memset(&o, 0, sizeof o);
            o.struct_size = sizeof o;
            o.set = LOUPE_OPTION_CLASSES | LOUPE_OPTION_MIN_REGION_AREA;
            o.classes = &first_defect;
            o.class_count = 1;
            o.min_region_area = 4;
            o.skip = (i % 2) ? LOUPE_SKIP_ANOMALY_MAP : LOUPE_SKIP_TYPE_MAP;
            CHECK(loupe_session_inspect_ex(session, &views[i], &o, &r));
            ++inspections;
            read_result(r, NULL);
            CHECK(loupe_result_destroy(r));

            /* A failure: the thread's message is replaced each time. */
            if (loupe_session_inspect(session, NULL, &r) != LOUPE_STATUS_NULL_ARGUMENT || r != NULL) {
                fprintf(stderr, "inspecting NULL did not fail as documented\n");
                return 1;
            }
            checksum += (double)strlen(loupe_last_error()) * 1e-3;
        }

        CHECK(loupe_session_inspect_batch(session, views, count, batch));
        inspections += count;
        for (size_t i = 0; i < count; ++i) {
            read_result(batch[i], argv[4 + i]);
            CHECK(loupe_result_destroy(batch[i]));
        }

        if (count >= 2) {
            LoupeProfileOptions po;
            memset(&po, 0, sizeof po);
            po.struct_size = sizeof po;
            po.name = "leak-driver";
            po.augmentation = LOUPE_AUGMENTATION_FLIPS;
            po.coreset_fraction = 0.5f;
            LoupeProfile *profile = NULL;
            CHECK(loupe_profile_create(engine, views, count, &po, &profile));
            CHECK(loupe_profile_save(profile, path));
            CHECK(loupe_profile_destroy(profile));
            profile = NULL;
            CHECK(loupe_profile_load(engine, path, &profile));
            const char *name;
            bool has;
            CHECK(loupe_profile_name(profile, &name));
            CHECK(loupe_profile_has_references(profile, &has));
            checksum += (double)strlen(name) + has;
            LoupeResult *r = NULL;
            CHECK(loupe_session_inspect_with_profile(session, profile, &views[0], &r));
            ++inspections;
            read_result(r, "golden");
            CHECK(loupe_result_destroy(r));
            /* The session holds the profile after its handle is gone; the next set_profile(NULL) releases it. */
            CHECK(loupe_session_set_profile(session, profile));
            CHECK(loupe_profile_destroy(profile));
            CHECK(loupe_session_inspect(session, &views[count - 1], &r));
            ++inspections;
            read_result(r, "golden-session");
            CHECK(loupe_result_destroy(r));
            CHECK(loupe_session_set_profile(session, NULL));
        }

        /* A mutual window of 4: the first 4 images fill it, the rest are scored against it. */
        CHECK(loupe_session_set_mutual(session, 4));
        for (size_t k = 0; k < 6; ++k) {
            LoupeResult *r = NULL;
            CHECK(loupe_session_inspect(session, &views[k % count], &r));
            ++inspections;
            read_result(r, "mutual");
            CHECK(loupe_result_destroy(r));
        }
        size_t window = 0;
        CHECK(loupe_session_window_len(session, &window));
        checksum += (double)window;
        CHECK(loupe_session_set_mutual(session, 0));
        CHECK(loupe_session_destroy(session));
    }
    CHECK(loupe_engine_destroy(engine));

    for (size_t i = 0; i < count; ++i) free(images[i].pixels);
    free(images);
    free(views);
    free(batch);
    printf("inspections=%zu checksum=%.6f\n", inspections, checksum);
    return 0;
}
