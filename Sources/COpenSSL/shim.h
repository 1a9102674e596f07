#ifndef KT_COPENSSL_SHIM_H
#define KT_COPENSSL_SHIM_H
// The X.509 work the product needs from libssl/libcrypto, as a few plain C
// functions: read a certificate's validity, check that a key matches a
// certificate, and issue EC P-256 certificates (the devcluster's CA and
// serving/client certificates). Strings returned through `char **` are
// malloc'd; free them with kt_free.
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

static inline void kt_free(void *p) { free(p); }

// Zeroes key material in a way the optimizer cannot drop (a plain memset before free can be).
static inline void kt_cleanse(void *p, size_t len) { if (p && len) OPENSSL_cleanse(p, len); }

// Frees a string returned through `char **` that held a private key, zeroed first.
static inline void kt_free_cleansed(char *p) { if (p) { OPENSSL_cleanse(p, strlen(p)); free(p); } }

static inline X509 *kt_x509_from_pem(const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return NULL;
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return cert;
}

static inline EVP_PKEY *kt_key_from_pem(const char *pem, size_t len) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return NULL;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return key;
}

/// Seconds since the Unix epoch of an ASN1_TIME, via ASN1_TIME_diff (no timegm).
static inline int kt_asn1_time_unix(const ASN1_TIME *t, long long *out) {
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;
    int ok = epoch && ASN1_TIME_diff(&days, &secs, epoch, t);
    ASN1_TIME_free(epoch);
    if (!ok) return 0;
    *out = (long long)days * 86400LL + (long long)secs;
    return 1;
}

/// 0 on success; -1 not a PEM certificate; -2 unreadable validity.
static inline int kt_x509_validity(const char *pem, size_t len, long long *notBefore, long long *notAfter) {
    ERR_clear_error();
    X509 *cert = kt_x509_from_pem(pem, len);
    if (!cert) { ERR_clear_error(); return -1; }
    int rc = 0;
    if (!kt_asn1_time_unix(X509_get0_notBefore(cert), notBefore)) rc = -2;
    if (!kt_asn1_time_unix(X509_get0_notAfter(cert), notAfter)) rc = -2;
    X509_free(cert);
    return rc;
}

/// 1 when the private key belongs to the certificate, 0 when not, -1 cert unreadable, -2 key unreadable.
static inline int kt_x509_key_matches(const char *certPEM, size_t certLen, const char *keyPEM, size_t keyLen) {
    ERR_clear_error();
    X509 *cert = kt_x509_from_pem(certPEM, certLen);
    if (!cert) { ERR_clear_error(); return -1; }
    EVP_PKEY *key = kt_key_from_pem(keyPEM, keyLen);
    if (!key) { X509_free(cert); ERR_clear_error(); return -2; }
    int rc = X509_check_private_key(cert, key) == 1 ? 1 : 0;
    EVP_PKEY_free(key);
    X509_free(cert);
    ERR_clear_error();
    return rc;
}

static inline char *kt_bio_to_string(BIO *bio) {
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0) return NULL;
    char *out = (char *)malloc((size_t)n + 1);
    if (!out) return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = 0;
    return out;
}

static inline int kt_x509_add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) return 0;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/// Issues an EC P-256 certificate for `cn` (optional organization `org`, optional
/// subjectAltName list `san` such as "DNS:localhost,IP:127.0.0.1"), valid from
/// now+notBeforeOffset for validitySeconds. Self-signed when issuerCertPEM is NULL.
/// `usage` is 0 for a CA, 1 for a TLS server, 2 for a TLS client.
/// Returns 1 on success with malloc'd PEM strings in *certOut and *keyOut (PKCS#8).
static inline int kt_x509_issue(const char *cn, const char *org, const char *san, int usage,
                                long notBeforeOffset, long validitySeconds,
                                const char *issuerCertPEM, const char *issuerKeyPEM,
                                char **certOut, char **keyOut) {
    int ok = 0;
    X509 *cert = NULL, *issuer = NULL;
    EVP_PKEY *key = NULL, *issuerKey = NULL;
    EVP_PKEY_CTX *kctx = NULL;
    BIO *cbio = NULL, *kbio = NULL;
    BIGNUM *serialBN = NULL;
    unsigned char serial[16];
    *certOut = NULL; *keyOut = NULL;
    ERR_clear_error();

    kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    if (!kctx || EVP_PKEY_keygen_init(kctx) <= 0) goto done;
    if (EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kctx, NID_X9_62_prime256v1) <= 0) goto done;
    if (EVP_PKEY_keygen(kctx, &key) <= 0) goto done;

    if (issuerCertPEM) {
        issuer = kt_x509_from_pem(issuerCertPEM, strlen(issuerCertPEM));
        issuerKey = kt_key_from_pem(issuerKeyPEM, strlen(issuerKeyPEM));
        if (!issuer || !issuerKey) goto done;
    }
    cert = X509_new();
    if (!cert || !X509_set_version(cert, 2)) goto done;
    if (RAND_bytes(serial, sizeof serial) != 1) goto done;
    serial[0] &= 0x7f;
    serialBN = BN_bin2bn(serial, sizeof serial, NULL);
    if (!serialBN || !BN_to_ASN1_INTEGER(serialBN, X509_get_serialNumber(cert))) goto done;
    if (!X509_gmtime_adj(X509_getm_notBefore(cert), notBeforeOffset)) goto done;
    if (!X509_gmtime_adj(X509_getm_notAfter(cert), notBeforeOffset + validitySeconds)) goto done;
    X509_NAME *name = X509_get_subject_name(cert);
    if (org && *org && !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0)) goto done;
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0)) goto done;
    if (!X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name)) goto done;
    if (!X509_set_pubkey(cert, key)) goto done;
    X509 *signer = issuer ? issuer : cert;
    if (!kt_x509_add_ext(cert, signer, NID_subject_key_identifier, "hash")) goto done;
    if (usage == 0) {
        if (!kt_x509_add_ext(cert, signer, NID_basic_constraints, "critical,CA:TRUE")) goto done;
        if (!kt_x509_add_ext(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature")) goto done;
    } else {
        if (!kt_x509_add_ext(cert, signer, NID_basic_constraints, "critical,CA:FALSE")) goto done;
        if (!kt_x509_add_ext(cert, signer, NID_key_usage, "critical,digitalSignature,keyEncipherment")) goto done;
        if (!kt_x509_add_ext(cert, signer, NID_ext_key_usage, usage == 1 ? "serverAuth" : "clientAuth")) goto done;
        if (issuer && !kt_x509_add_ext(cert, signer, NID_authority_key_identifier, "keyid:always")) goto done;
    }
    if (san && *san && !kt_x509_add_ext(cert, signer, NID_subject_alt_name, san)) goto done;
    if (!X509_sign(cert, issuerKey ? issuerKey : key, EVP_sha256())) goto done;

    cbio = BIO_new(BIO_s_mem());
    kbio = BIO_new(BIO_s_secmem());  // cleansed when freed: it holds the private key
    if (!cbio || !kbio) goto done;
    if (!PEM_write_bio_X509(cbio, cert)) goto done;
    if (!PEM_write_bio_PrivateKey(kbio, key, NULL, NULL, 0, NULL, NULL)) goto done;
    *certOut = kt_bio_to_string(cbio);
    *keyOut = kt_bio_to_string(kbio);
    ok = *certOut && *keyOut;
done:
    if (!ok) { free(*certOut); free(*keyOut); *certOut = NULL; *keyOut = NULL; }
    BN_free(serialBN);
    BIO_free(cbio); BIO_free(kbio);
    X509_free(cert); X509_free(issuer);
    EVP_PKEY_free(key); EVP_PKEY_free(issuerKey);
    EVP_PKEY_CTX_free(kctx);
    ERR_clear_error();
    return ok;
}

/// A fresh EC P-256 private key as PKCS#8 PEM (malloc'd). 1 on success.
static inline int kt_ec_generate(char **keyOut) {
    *keyOut = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    int ok = 0;
    if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0) goto done;
    if (EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) <= 0) goto done;
    if (EVP_PKEY_keygen(ctx, &key) <= 0) goto done;
    bio = BIO_new(BIO_s_secmem());  // cleansed when freed: it holds the private key
    if (!bio || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) goto done;
    *keyOut = kt_bio_to_string(bio);
    ok = *keyOut != NULL;
done:
    BIO_free(bio); EVP_PKEY_free(key); EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/// ES256 (JWS): ECDSA P-256 over SHA-256, signature as 64 raw bytes r||s. 1 on success.
static inline int kt_es256_sign(const char *keyPEM, const unsigned char *msg, size_t len, unsigned char out[64]) {
    int ok = 0;
    EVP_PKEY *key = kt_key_from_pem(keyPEM, strlen(keyPEM));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[128];
    size_t derLen = sizeof der;
    ECDSA_SIG *sig = NULL;
    if (!key || !md) goto done;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1) goto done;
    if (EVP_DigestSign(md, der, &derLen, msg, len) != 1) goto done;
    const unsigned char *p = der;
    sig = d2i_ECDSA_SIG(NULL, &p, (long)derLen);
    if (!sig) goto done;
    if (BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32) != 32) goto done;
    if (BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32) != 32) goto done;
    ok = 1;
done:
    ECDSA_SIG_free(sig); EVP_MD_CTX_free(md); EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

/// Verifies an ES256 signature (64 raw bytes) with the public half of keyPEM. 1 valid, 0 not.
static inline int kt_es256_verify(const char *keyPEM, const unsigned char *msg, size_t len, const unsigned char sig64[64]) {
    int ok = 0;
    EVP_PKEY *key = kt_key_from_pem(keyPEM, strlen(keyPEM));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ECDSA_SIG *sig = ECDSA_SIG_new();
    unsigned char *der = NULL;
    BIGNUM *r = BN_bin2bn(sig64, 32, NULL), *s = BN_bin2bn(sig64 + 32, 32, NULL);
    if (!key || !md || !sig || !r || !s) goto done;
    if (ECDSA_SIG_set0(sig, r, s) != 1) goto done;
    r = NULL; s = NULL;
    int derLen = i2d_ECDSA_SIG(sig, &der);
    if (derLen <= 0) goto done;
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1) goto done;
    ok = EVP_DigestVerify(md, der, (size_t)derLen, msg, len) == 1;
done:
    OPENSSL_free(der); BN_free(r); BN_free(s); ECDSA_SIG_free(sig); EVP_MD_CTX_free(md); EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}
// ---- The age file format's primitives (X25519, HKDF-SHA256, HMAC-SHA256,
// ChaCha20-Poly1305), for encrypted credential backups. Each returns 1 on success.
#include <openssl/kdf.h>

static inline int kt_random(unsigned char *out, size_t len) {
    return RAND_bytes(out, (int)len) == 1;
}

/// The X25519 public key of a 32-byte private key.
static inline int kt_x25519_public(const unsigned char priv[32], unsigned char pub[32]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    size_t len = 32;
    int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == 32;
    EVP_PKEY_free(k);
    ERR_clear_error();
    return ok;
}

/// X25519(priv, peer). Fails (0) on an all-zero result, as age requires.
static inline int kt_x25519(const unsigned char priv[32], const unsigned char peer[32], unsigned char out[32]) {
    int ok = 0;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    size_t len = 32;
    if (!k || !p || !ctx) goto done;
    if (EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, p) != 1) goto done;
    if (EVP_PKEY_derive(ctx, out, &len) != 1 || len != 32) goto done;
    unsigned char acc = 0;
    for (int i = 0; i < 32; i++) acc |= out[i];
    ok = acc != 0;
done:
    EVP_PKEY_CTX_free(ctx); EVP_PKEY_free(p); EVP_PKEY_free(k);
    ERR_clear_error();
    return ok;
}

/// HKDF-SHA256 (RFC 5869), extract then expand.
static inline int kt_hkdf_sha256(const unsigned char *ikm, size_t ikmLen, const unsigned char *salt, size_t saltLen,
                                 const unsigned char *info, size_t infoLen, unsigned char *out, size_t outLen) {
    int ok = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (!ctx || EVP_PKEY_derive_init(ctx) != 1) goto done;
    if (EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) != 1) goto done;
    if (EVP_PKEY_CTX_set1_hkdf_salt(ctx, saltLen ? salt : (const unsigned char *)"", (int)saltLen) != 1) goto done;
    if (EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikmLen) != 1) goto done;
    if (infoLen && EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)infoLen) != 1) goto done;
    ok = EVP_PKEY_derive(ctx, out, &outLen) == 1;
done:
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

static inline int kt_hmac_sha256(const unsigned char *key, size_t keyLen, const unsigned char *msg, size_t len, unsigned char out[32]) {
    size_t outLen = 0;
    int ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keyLen, msg, len, out, 32, &outLen) != NULL && outLen == 32;
    ERR_clear_error();
    return ok;
}

/// ChaCha20-Poly1305 (RFC 8439), no associated data. seal: out = ciphertext || 16-byte tag (len + 16 bytes);
/// open: in = ciphertext || tag (len >= 16), out gets len - 16 bytes; 0 when the tag does not verify.
static inline int kt_chacha20poly1305(int seal, const unsigned char key[32], const unsigned char nonce[12],
                                      const unsigned char *in, size_t len, unsigned char *out) {
    int ok = 0, n = 0, f = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return 0;
    if (!seal && len < 16) goto done;
    size_t body = seal ? len : len - 16;
    if (EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, seal) != 1) goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1) goto done;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, seal) != 1) goto done;
    if (!seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(in + body)) != 1) goto done;
    if (body > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)body) != 1) goto done;
    if (EVP_CipherFinal_ex(ctx, out + n, &f) != 1) goto done;
    if (seal && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + body) != 1) goto done;
    ok = 1;
done:
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}
#endif
