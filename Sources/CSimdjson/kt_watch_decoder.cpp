#include "kt_watch_decoder.h"
#include <simdjson.h>
#include <string>
#include <vector>

using namespace simdjson;

struct kt_decoder {
    ondemand::parser parser;
    std::vector<kt_entry> entries;
    std::string error;
    // Integers are turned into text here so every entry is (key, value) text.
    std::vector<std::string> numbers;
};

namespace {

inline void put(kt_decoder *d, kt_field f, std::string_view k, std::string_view v) {
    d->entries.push_back(kt_entry{(uint32_t)f, (uint32_t)k.size(), (uint32_t)v.size(), k.data(), v.data()});
}

inline void put(kt_decoder *d, kt_field f, std::string_view v) { put(d, f, std::string_view(), v); }

// Go writes a nil slice or map whose field has no `omitempty` as null (a zero-value Pod, as in
// every Pod BOOKMARK, carries `"spec":{"containers":null}`), and a client may send null for any
// optional field. Null is an absent field, never a wrong type. simdjson consumes the value only
// when it is null.
inline bool absent(ondemand::value &v) {
    bool isNull = false;
    return v.is_null().get(isNull) == SUCCESS && isNull;
}

// The object at `r`, or `present = false` when it is null. Taking the result (not the value)
// keeps an error an error code: converting a failed result to a value would throw.
inline error_code object_or_null(simdjson_result<ondemand::value> r, ondemand::object &out, bool &present) {
    present = false;
    ondemand::value v;
    auto err = r.get(v);
    if (err) return err;
    if (absent(v)) return SUCCESS;
    err = v.get_object().get(out);
    if (!err) present = true;
    return err;
}

inline error_code array_or_null(simdjson_result<ondemand::value> r, ondemand::array &out, bool &present) {
    present = false;
    ondemand::value v;
    auto err = r.get(v);
    if (err) return err;
    if (absent(v)) return SUCCESS;
    err = v.get_array().get(out);
    if (!err) present = true;
    return err;
}

error_code read_string_map(kt_decoder *d, simdjson_result<ondemand::value> v, kt_field f) {
    ondemand::object obj;
    bool present;
    auto err = object_or_null(v, obj, present);
    if (err || !present) return err;
    for (auto field : obj) {
        std::string_view key;
        if ((err = field.unescaped_key().get(key))) return err;
        std::string_view value;
        if (field.value().get_string().get(value) == SUCCESS) put(d, f, key, value);
    }
    return SUCCESS;
}

error_code read_metadata(kt_decoder *d, simdjson_result<ondemand::value> v) {
    ondemand::object obj;
    bool present;
    auto err = object_or_null(v, obj, present);
    if (err || !present) return err;
    for (auto field : obj) {
        std::string_view key;
        if ((err = field.unescaped_key().get(key))) return err;
        std::string_view s;
        if (key == "name") { if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_NAME, s); }
        else if (key == "namespace") { if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_NAMESPACE, s); }
        else if (key == "uid") { if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_UID, s); }
        else if (key == "resourceVersion") { if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_RESOURCE_VERSION, s); }
        else if (key == "deletionTimestamp") { if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_DELETION_TIMESTAMP, s); }
        else if (key == "labels") { if ((err = read_string_map(d, field.value(), KT_F_LABEL))) return err; }
        else if (key == "annotations") { if ((err = read_string_map(d, field.value(), KT_F_ANNOTATION))) return err; }
        else if (key == "ownerReferences") {
            ondemand::array arr;
            if ((err = array_or_null(field.value(), arr, present))) return err;
            if (!present) continue;
            for (auto item : arr) {
                ondemand::object o;
                bool isObject;
                if ((err = object_or_null(item, o, isObject))) return err;
                if (!isObject) continue;
                std::string_view kind, name;
                bool controller = false;
                for (auto of : o) {
                    std::string_view ok;
                    if ((err = of.unescaped_key().get(ok))) return err;
                    if (ok == "kind") (void)of.value().get_string().get(kind);
                    else if (ok == "name") (void)of.value().get_string().get(name);
                    else if (ok == "controller") (void)of.value().get_bool().get(controller);
                }
                put(d, KT_F_OWNER, kind, name);
                if (controller) put(d, KT_F_OWNER_CONTROLLER, name);
            }
        }
    }
    return SUCCESS;
}

// Reads `[{"name": …}, …]` lists (imagePullSecrets) as entries of field f.
error_code read_name_list(kt_decoder *d, simdjson_result<ondemand::value> v, kt_field f) {
    ondemand::array arr;
    bool present;
    auto err = array_or_null(v, arr, present);
    if (err || !present) return err;
    for (auto item : arr) {
        ondemand::object o;
        if ((err = object_or_null(item, o, present))) return err;
        if (!present) continue;
        std::string_view name;
        if (o.find_field_unordered("name").get_string().get(name) == SUCCESS) put(d, f, name);
    }
    return SUCCESS;
}

error_code read_containers(kt_decoder *d, simdjson_result<ondemand::value> v) {
    ondemand::array arr;
    bool present;
    auto err = array_or_null(v, arr, present);
    if (err || !present) return err;
    for (auto item : arr) {
        ondemand::object o;
        if ((err = object_or_null(item, o, present))) return err;
        if (!present) continue;
        std::string_view name, image;
        for (auto f : o) {
            std::string_view k;
            if ((err = f.unescaped_key().get(k))) return err;
            if (k == "name") (void)f.value().get_string().get(name);
            else if (k == "image") (void)f.value().get_string().get(image);
        }
        put(d, KT_F_IMAGE, name, image);
    }
    return SUCCESS;
}

error_code read_statuses(kt_decoder *d, simdjson_result<ondemand::value> v) {
    ondemand::array arr;
    bool present;
    auto err = array_or_null(v, arr, present);
    if (err || !present) return err;
    for (auto item : arr) {
        ondemand::object o;
        if ((err = object_or_null(item, o, present))) return err;
        if (!present) continue;
        for (auto f : o) {
            std::string_view k;
            if ((err = f.unescaped_key().get(k))) return err;
            if (k != "state") continue;
            ondemand::object state;
            if (f.value().get_object().get(state) != SUCCESS) continue;
            ondemand::object waiting;
            if (state.find_field_unordered("waiting").get_object().get(waiting) != SUCCESS) continue;
            std::string_view reason, message;
            for (auto w : waiting) {
                std::string_view wk;
                if ((err = w.unescaped_key().get(wk))) return err;
                if (wk == "reason") (void)w.value().get_string().get(reason);
                else if (wk == "message") (void)w.value().get_string().get(message);
            }
            put(d, KT_F_WAITING, reason, message);
        }
    }
    return SUCCESS;
}

error_code read_object(kt_decoder *d, simdjson_result<ondemand::value> v, int kind, bool isStatus) {
    ondemand::object obj;
    auto err = v.get_object().get(obj);
    if (err) return err;
    if (kind == KT_KIND_RAW && !isStatus) {
        std::string_view raw;
        if ((err = obj.raw_json().get(raw))) return err;
        put(d, KT_F_RAW, raw);
        if ((err = obj.reset().error())) return err;
    }
    for (auto field : obj) {
        std::string_view key;
        if ((err = field.unescaped_key().get(key))) return err;
        if (key == "metadata") { if ((err = read_metadata(d, field.value()))) return err; continue; }
        if (key == "kind") {
            std::string_view s;
            if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_OBJECT_KIND, s);
            continue;
        }
        if (isStatus) {
            std::string_view s;
            if (key == "code") {
                int64_t code = 0;
                if (field.value().get_int64().get(code) == SUCCESS) {
                    d->numbers.push_back(std::to_string(code));
                }
            } else if (key == "reason") { if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_STATUS_REASON, s); }
            else if (key == "message") { if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_STATUS_MESSAGE, s); }
            continue;
        }
        switch (kind) {
        case KT_KIND_SECRET:
            if (key == "type") { std::string_view s; if (field.value().get_string().get(s) == SUCCESS) put(d, KT_F_SECRET_TYPE, s); }
            else if (key == "data") { if ((err = read_string_map(d, field.value(), KT_F_DATA))) return err; }
            break;
        case KT_KIND_SERVICEACCOUNT:
            if (key == "imagePullSecrets") { if ((err = read_name_list(d, field.value(), KT_F_PULL_SECRET))) return err; }
            break;
        case KT_KIND_POD:
            if (key == "spec") {
                ondemand::object spec;
                bool present;
                if ((err = object_or_null(field.value(), spec, present))) return err;
                if (!present) break;
                for (auto sf : spec) {
                    std::string_view sk;
                    if ((err = sf.unescaped_key().get(sk))) return err;
                    if (sk == "serviceAccountName") { std::string_view s; if (sf.value().get_string().get(s) == SUCCESS) put(d, KT_F_SERVICE_ACCOUNT_NAME, s); }
                    else if (sk == "containers" || sk == "initContainers") { if ((err = read_containers(d, sf.value()))) return err; }
                    else if (sk == "imagePullSecrets") { if ((err = read_name_list(d, sf.value(), KT_F_PULL_SECRET))) return err; }
                }
            } else if (key == "status") {
                ondemand::object status;
                bool present;
                if ((err = object_or_null(field.value(), status, present))) return err;
                if (!present) break;
                for (auto sf : status) {
                    std::string_view sk;
                    if ((err = sf.unescaped_key().get(sk))) return err;
                    if (sk == "containerStatuses" || sk == "initContainerStatuses") { if ((err = read_statuses(d, sf.value()))) return err; }
                }
            }
            break;
        default:
            break;
        }
    }
    return SUCCESS;
}

// Common start of a decode: reset the outputs, check the padding, start iterating.
error_code begin(kt_decoder *d, const char *buf, size_t len, size_t capacity, ondemand::document &doc) {
    d->entries.clear();
    d->numbers.clear();
    d->error.clear();
    if (capacity < len + SIMDJSON_PADDING) { d->error = "buffer lacks simdjson padding"; return CAPACITY; }
    return d->parser.iterate(buf, len, capacity).get(doc);
}

int fail(kt_decoder *d, error_code err) {
    if (d->error.empty()) d->error = error_message(err);
    return -1;
}

} // namespace

extern "C" {

kt_decoder *kt_decoder_new(void) {
    try { return new kt_decoder(); } catch (...) { return nullptr; }
}

void kt_decoder_free(kt_decoder *d) { delete d; }

size_t kt_padding(void) { return SIMDJSON_PADDING; }

const char *kt_decoder_error(kt_decoder *d) { return d->error.c_str(); }

int kt_decode_event(kt_decoder *d, const char *buf, size_t len, size_t capacity, int kind, const kt_entry **entries) {
    ondemand::document doc;
    auto err = begin(d, buf, len, capacity, doc);
    if (!err) {
        ondemand::object top;
        err = doc.get_object().get(top);
        if (!err) {
            std::string_view type;
            bool haveObject = false;
            // kube-apiserver writes "type" before "object"; a Status is recognised by its type.
            for (auto field : top) {
                std::string_view key;
                if ((err = field.unescaped_key().get(key))) break;
                if (key == "type") {
                    if ((err = field.value().get_string().get(type))) break;
                    put(d, KT_F_EVENT_TYPE, type);
                } else if (key == "object") {
                    haveObject = true;
                    if ((err = read_object(d, field.value(), kind, type == "ERROR"))) break;
                }
            }
            if (!err && type.empty()) { d->error = "watch event has no \"type\""; return -1; }
            if (!err && !haveObject) { d->error = "watch event has no \"object\""; return -1; }
        }
    }
    if (err) return fail(d, err);
    // Numbers were formatted into `numbers`; it does not reallocate once filled.
    for (auto &n : d->numbers) put(d, KT_F_STATUS_CODE, n);
    *entries = d->entries.data();
    return (int)d->entries.size();
}

int kt_decode_list(kt_decoder *d, const char *buf, size_t len, size_t capacity, int kind, const kt_entry **entries) {
    ondemand::document doc;
    auto err = begin(d, buf, len, capacity, doc);
    if (!err) {
        ondemand::object top;
        err = doc.get_object().get(top);
        if (!err) {
            for (auto field : top) {
                std::string_view key;
                if ((err = field.unescaped_key().get(key))) break;
                if (key == "metadata") {
                    ondemand::object meta;
                    bool present;
                    if ((err = object_or_null(field.value(), meta, present))) break;
                    if (!present) continue;
                    for (auto mf : meta) {
                        std::string_view mk, s;
                        if ((err = mf.unescaped_key().get(mk))) break;
                        if (mk == "resourceVersion" && mf.value().get_string().get(s) == SUCCESS) put(d, KT_F_LIST_RESOURCE_VERSION, s);
                        else if (mk == "continue" && mf.value().get_string().get(s) == SUCCESS) put(d, KT_F_LIST_CONTINUE, s);
                    }
                    if (err) break;
                } else if (key == "items") {
                    // `items` has no omitempty: an empty list may come as `"items":null`.
                    ondemand::array items;
                    bool present;
                    if ((err = array_or_null(field.value(), items, present))) break;
                    if (!present) continue;
                    for (auto item : items) {
                        ondemand::value v;
                        if ((err = item.get(v))) break;
                        put(d, KT_F_ITEM_BEGIN, std::string_view());
                        if ((err = read_object(d, std::move(v), kind, false))) break;
                    }
                    if (err) break;
                }
            }
        }
    }
    if (err) return fail(d, err);
    *entries = d->entries.data();
    return (int)d->entries.size();
}

} // extern "C"
