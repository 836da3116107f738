#ifndef EVNODE_CPKCS11_H
#define EVNODE_CPKCS11_H

#include <stddef.h>
#include <stdint.h>

/* An Ed25519 private key inside a PKCS#11 token, reached through the token's module (loaded
 * with dlopen by path). The key never leaves the token: only its public key and signatures do.
 * One handle holds one logged-in session; calls on one handle must not overlap (the signer's
 * fence serialises them). */
typedef struct evp11_key evp11_key;

/* What went wrong, so that the Swift side can name it in one line. */
enum evp11_failure {
    EVP11_OK = 0,
    EVP11_MODULE = 1,        /* the module cannot be loaded, or has no C_GetFunctionList */
    EVP11_INIT = 2,          /* C_Initialize / C_GetFunctionList failed */
    EVP11_TOKEN = 3,         /* no token with that label */
    EVP11_PIN = 4,           /* wrong PIN, locked PIN, or login failed */
    EVP11_KEY = 5,           /* no private key (or no public key) with that label */
    EVP11_NOT_ED25519 = 6,   /* the key is not an Ed25519 (CKK_EC_EDWARDS, edwards25519) key */
    EVP11_SIGN = 7,          /* C_SignInit / C_Sign failed */
    EVP11_SESSION = 8        /* opening the session failed */
};

/* Opens `module`, finds the token labelled `token_label`, logs in as user with `pin`, and
 * finds the private and public key labelled `key_label`. On failure returns the failure, fills
 * `detail` (NUL-terminated, at most `detail_len` bytes) and leaves `*out` NULL. */
int evp11_open(const char *module, const char *token_label, const uint8_t *pin, size_t pin_len,
               const char *key_label, evp11_key **out, char *detail, size_t detail_len);

/* The raw 32-byte Ed25519 public key read from the token at open. */
void evp11_public_key(const evp11_key *key, uint8_t out[32]);

/* Signs `message` with CKM_EDDSA (pure Ed25519) inside the token: 64 bytes into `signature`. */
int evp11_sign(evp11_key *key, const uint8_t *message, size_t message_len, uint8_t signature[64],
               char *detail, size_t detail_len);

/* Logs out, closes the session, finalizes and unloads the module. */
void evp11_close(evp11_key *key);

#endif
