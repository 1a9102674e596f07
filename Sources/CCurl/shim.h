#ifndef KT_CCURL_SHIM_H
#define KT_CCURL_SHIM_H
// libcurl's setopt/getinfo are variadic and cannot be called from Swift:
// these typed wrappers are the whole C surface the transport uses.
#include <curl/curl.h>

typedef size_t (*kt_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*kt_curl_xferinfo_cb)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                   curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode kt_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode kt_curl_setopt_ptr(CURL *h, CURLoption o, const void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode kt_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode kt_curl_setopt_data_cb(CURL *h, CURLoption o, kt_curl_data_cb v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode kt_curl_setopt_xferinfo_cb(CURL *h, kt_curl_xferinfo_cb v) {
    return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, v);
}
/// Hands a PEM blob to libcurl, which copies it (CURL_BLOB_COPY): nothing touches disk.
static inline CURLcode kt_curl_setopt_blob(CURL *h, CURLoption o, const void *data, size_t len) {
    struct curl_blob blob;
    blob.data = (void *)data;
    blob.len = len;
    blob.flags = CURL_BLOB_COPY;
    return curl_easy_setopt(h, o, &blob);
}
static inline CURLcode kt_curl_getinfo_long(CURL *h, CURLINFO i, long *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode kt_curl_getinfo_ptr(CURL *h, CURLINFO i, void **out) { return curl_easy_getinfo(h, i, out); }

static inline CURLMcode kt_curl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

/// CURLMsg holds a union; Swift sees it awkwardly, so flatten the one case we read.
static inline int kt_curl_msg_done(CURLMsg *msg, CURL **easy, CURLcode *result) {
    if (msg->msg != CURLMSG_DONE) return 0;
    *easy = msg->easy_handle;
    *result = msg->data.result;
    return 1;
}

static inline size_t kt_curl_writefunc_pause(void) { return CURL_WRITEFUNC_PAUSE; }
static inline int kt_curl_http_version_2tls(void) { return CURL_HTTP_VERSION_2TLS; }
static inline int kt_curl_http_version_2_0(void) { return CURL_HTTP_VERSION_2_0; }
#endif
