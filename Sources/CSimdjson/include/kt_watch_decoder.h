#ifndef KT_WATCH_DECODER_H
#define KT_WATCH_DECODER_H
// A C surface over simdjson On-Demand for the watch hot path: one call
// decodes one watch event line into a flat list of (field, key, value)
// entries whose strings point into the decoder's own buffers (valid until
// the next call). Swift builds its small projections from those entries.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What to extract besides metadata.
typedef enum {
    KT_KIND_META = 0,      // metadata only
    KT_KIND_SECRET = 1,    // + type, data
    KT_KIND_SERVICEACCOUNT = 2, // + imagePullSecrets
    KT_KIND_POD = 3,       // + serviceAccountName, images, pull secrets, waiting reasons, owners
    KT_KIND_RAW = 4,       // + the raw JSON of the object
} kt_kind;

typedef enum {
    KT_F_EVENT_TYPE = 1, KT_F_NAME, KT_F_NAMESPACE, KT_F_UID, KT_F_RESOURCE_VERSION,
    KT_F_LABEL, KT_F_ANNOTATION, KT_F_OWNER, KT_F_OWNER_CONTROLLER, KT_F_DELETION_TIMESTAMP,
    KT_F_SECRET_TYPE, KT_F_DATA, KT_F_SERVICE_ACCOUNT_NAME, KT_F_IMAGE, KT_F_PULL_SECRET,
    KT_F_WAITING, KT_F_STATUS_CODE, KT_F_STATUS_REASON, KT_F_STATUS_MESSAGE, KT_F_RAW,
    KT_F_OBJECT_KIND,
    KT_F_ITEM_BEGIN,       // a list item starts (kt_decode_list)
    KT_F_LIST_RESOURCE_VERSION, KT_F_LIST_CONTINUE,
} kt_field;

typedef struct {
    uint32_t field;
    uint32_t key_len;
    uint32_t value_len;
    const char *key;
    const char *value;
} kt_entry;

typedef struct kt_decoder kt_decoder;

kt_decoder *kt_decoder_new(void);
void kt_decoder_free(kt_decoder *d);

/// Decodes one line. `capacity` must be at least `len + kt_padding()` bytes
/// of readable memory at `buf`. Returns the number of entries (>= 0), or -1
/// with kt_decoder_error() describing the problem.
int kt_decode_event(kt_decoder *d, const char *buf, size_t len, size_t capacity, int kind, const kt_entry **entries);
/// Decodes a whole `…List` answer: list metadata entries, then for every
/// item a KT_F_ITEM_BEGIN entry followed by its entries.
int kt_decode_list(kt_decoder *d, const char *buf, size_t len, size_t capacity, int kind, const kt_entry **entries);
const char *kt_decoder_error(kt_decoder *d);
size_t kt_padding(void);

#ifdef __cplusplus
}
#endif
#endif
