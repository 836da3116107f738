/* The PKCS#11 calls of evnode's signer (issue 29): Debian's p11-kit header (the standard
 * PKCS#11 names in its compatibility mode), the token's module loaded with dlopen by path. */
#include "CPKCS11.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit-1/p11-kit/pkcs11.h>

struct evp11_key {
    void *module;
    CK_FUNCTION_LIST_PTR f;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE private_key;
    uint8_t public_key[32];
    int logged_in;
    int initialized;
};

static int fail(int failure, char *detail, size_t detail_len, const char *what, CK_RV rv) {
    if (detail && detail_len > 0) {
        if (rv == CKR_OK) snprintf(detail, detail_len, "%s", what);
        else snprintf(detail, detail_len, "%s (CKR 0x%lx)", what, (unsigned long)rv);
    }
    return failure;
}

/* A token label is 32 bytes padded with spaces, not NUL-terminated. */
static int label_matches(const unsigned char label[32], const char *wanted) {
    size_t n = strlen(wanted);
    if (n > 32) return 0;
    if (memcmp(label, wanted, n) != 0) return 0;
    for (size_t i = n; i < 32; i++) if (label[i] != ' ' && label[i] != 0) return 0;
    return 1;
}

/* The one object of `klass` labelled `label`; 0 when none (or more than one: ambiguous). */
static CK_RV find_one(struct evp11_key *k, CK_OBJECT_CLASS klass, const char *label, CK_OBJECT_HANDLE *out, int *count) {
    CK_ATTRIBUTE query[2] = {
        { CKA_CLASS, &klass, sizeof klass },
        { CKA_LABEL, (void *)label, strlen(label) },
    };
    CK_RV rv = k->f->C_FindObjectsInit(k->session, query, 2);
    if (rv != CKR_OK) return rv;
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    rv = k->f->C_FindObjects(k->session, found, 2, &n);
    k->f->C_FindObjectsFinal(k->session);
    if (rv != CKR_OK) return rv;
    *count = (int)n;
    if (n >= 1) *out = found[0];
    return CKR_OK;
}

/* CKA_EC_PARAMS of Ed25519: the OID 1.3.101.112, or the PrintableString "edwards25519"
 * (PKCS#11 3.0's two spellings; SoftHSM and OpenSC write the latter). */
static int is_ed25519_params(const uint8_t *p, CK_ULONG n) {
    static const uint8_t oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
    static const uint8_t name[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9' };
    return (n == sizeof oid && memcmp(p, oid, n) == 0) || (n == sizeof name && memcmp(p, name, n) == 0);
}

int evp11_open(const char *module, const char *token_label, const uint8_t *pin, size_t pin_len,
               const char *key_label, evp11_key **out, char *detail, size_t detail_len) {
    *out = NULL;
    struct evp11_key *k = calloc(1, sizeof *k);
    if (!k) return fail(EVP11_INIT, detail, detail_len, "out of memory", CKR_OK);
    int failure = EVP11_OK;
    CK_RV rv;

    k->module = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (!k->module) {
        const char *why = dlerror();
        failure = fail(EVP11_MODULE, detail, detail_len, why ? why : "dlopen failed", CKR_OK);
        goto out;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(k->module, "C_GetFunctionList");
    if (!get) {
        failure = fail(EVP11_MODULE, detail, detail_len, "the library has no C_GetFunctionList: not a PKCS#11 module", CKR_OK);
        goto out;
    }
    if ((rv = get(&k->f)) != CKR_OK || !k->f) {
        failure = fail(EVP11_INIT, detail, detail_len, "C_GetFunctionList failed", rv);
        goto out;
    }
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    rv = k->f->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        failure = fail(EVP11_INIT, detail, detail_len, "C_Initialize failed", rv);
        goto out;
    }
    k->initialized = rv == CKR_OK;

    CK_ULONG slots = 0;
    if ((rv = k->f->C_GetSlotList(CK_TRUE, NULL, &slots)) != CKR_OK) {
        failure = fail(EVP11_TOKEN, detail, detail_len, "C_GetSlotList failed", rv);
        goto out;
    }
    /* A bound the module cannot push past: slot lists are short. */
    if (slots > 1024) slots = 1024;
    CK_SLOT_ID *ids = calloc(slots ? slots : 1, sizeof *ids);
    if (!ids) { failure = fail(EVP11_INIT, detail, detail_len, "out of memory", CKR_OK); goto out; }
    if ((rv = k->f->C_GetSlotList(CK_TRUE, ids, &slots)) != CKR_OK) {
        free(ids);
        failure = fail(EVP11_TOKEN, detail, detail_len, "C_GetSlotList failed", rv);
        goto out;
    }
    int found = 0;
    CK_SLOT_ID slot = 0;
    for (CK_ULONG i = 0; i < slots && !found; i++) {
        CK_TOKEN_INFO info;
        if (k->f->C_GetTokenInfo(ids[i], &info) == CKR_OK && label_matches(info.label, token_label)) {
            slot = ids[i];
            found = 1;
        }
    }
    free(ids);
    if (!found) {
        failure = fail(EVP11_TOKEN, detail, detail_len, "no token with this label in any slot of the module", CKR_OK);
        goto out;
    }
    if ((rv = k->f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &k->session)) != CKR_OK) {
        failure = fail(EVP11_SESSION, detail, detail_len, "C_OpenSession failed", rv);
        goto out;
    }
    rv = k->f->C_Login(k->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)pin_len);
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE) {
        failure = fail(EVP11_PIN, detail, detail_len,
                       rv == CKR_PIN_LOCKED ? "the user PIN is locked" : "the token refused the PIN", rv);
        goto out;
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        failure = fail(EVP11_PIN, detail, detail_len, "C_Login failed", rv);
        goto out;
    }
    k->logged_in = 1;

    int count = 0;
    if ((rv = find_one(k, CKO_PRIVATE_KEY, key_label, &k->private_key, &count)) != CKR_OK) {
        failure = fail(EVP11_KEY, detail, detail_len, "searching the private key failed", rv);
        goto out;
    }
    if (count != 1) {
        failure = fail(EVP11_KEY, detail, detail_len,
                       count == 0 ? "no private key with this label on the token" : "more than one private key with this label on the token", CKR_OK);
        goto out;
    }
    CK_KEY_TYPE type = 0;
    CK_ATTRIBUTE type_attr = { CKA_KEY_TYPE, &type, sizeof type };
    if ((rv = k->f->C_GetAttributeValue(k->session, k->private_key, &type_attr, 1)) != CKR_OK) {
        failure = fail(EVP11_NOT_ED25519, detail, detail_len, "reading the key's type failed", rv);
        goto out;
    }
    if (type != CKK_EC_EDWARDS) {
        char what[96];
        snprintf(what, sizeof what, "the key's type is 0x%lx, not CKK_EC_EDWARDS", (unsigned long)type);
        failure = fail(EVP11_NOT_ED25519, detail, detail_len, what, CKR_OK);
        goto out;
    }
    CK_OBJECT_HANDLE public_key = 0;
    if ((rv = find_one(k, CKO_PUBLIC_KEY, key_label, &public_key, &count)) != CKR_OK || count != 1) {
        failure = fail(EVP11_KEY, detail, detail_len,
                       count == 0 ? "no public key with this label on the token (the signer reads the key's public half there)" : "more than one public key with this label on the token", rv);
        goto out;
    }
    uint8_t params[64], point[64];
    CK_ATTRIBUTE attrs[2] = {
        { CKA_EC_PARAMS, params, sizeof params },
        { CKA_EC_POINT, point, sizeof point },
    };
    if ((rv = k->f->C_GetAttributeValue(k->session, public_key, attrs, 2)) != CKR_OK) {
        failure = fail(EVP11_NOT_ED25519, detail, detail_len, "reading the public key's EC_PARAMS and EC_POINT failed", rv);
        goto out;
    }
    if (!is_ed25519_params(params, attrs[0].ulValueLen)) {
        failure = fail(EVP11_NOT_ED25519, detail, detail_len, "the key's curve (EC_PARAMS) is not edwards25519", CKR_OK);
        goto out;
    }
    /* EC_POINT: the 32 raw bytes, or DER OCTET STRING around them (04 20 ...). */
    if (attrs[1].ulValueLen == 34 && point[0] == 0x04 && point[1] == 0x20) {
        memcpy(k->public_key, point + 2, 32);
    } else if (attrs[1].ulValueLen == 32) {
        memcpy(k->public_key, point, 32);
    } else {
        failure = fail(EVP11_NOT_ED25519, detail, detail_len, "the public key's EC_POINT is not a 32-byte Ed25519 key", CKR_OK);
        goto out;
    }
out:
    if (failure != EVP11_OK) {
        evp11_close(k);
        return failure;
    }
    *out = k;
    return EVP11_OK;
}

void evp11_public_key(const evp11_key *key, uint8_t out[32]) {
    memcpy(out, key->public_key, 32);
}

int evp11_sign(evp11_key *k, const uint8_t *message, size_t message_len, uint8_t signature[64],
               char *detail, size_t detail_len) {
    CK_MECHANISM mechanism = { CKM_EDDSA, NULL, 0 };
    CK_RV rv = k->f->C_SignInit(k->session, &mechanism, k->private_key);
    if (rv != CKR_OK) return fail(EVP11_SIGN, detail, detail_len, "C_SignInit (CKM_EDDSA) failed", rv);
    CK_ULONG length = 64;
    rv = k->f->C_Sign(k->session, (CK_BYTE_PTR)message, (CK_ULONG)message_len, signature, &length);
    if (rv != CKR_OK) return fail(EVP11_SIGN, detail, detail_len, "C_Sign failed", rv);
    if (length != 64) return fail(EVP11_SIGN, detail, detail_len, "the token's signature is not 64 bytes", CKR_OK);
    return EVP11_OK;
}

void evp11_close(evp11_key *k) {
    if (!k) return;
    if (k->f) {
        if (k->logged_in) k->f->C_Logout(k->session);
        if (k->session) k->f->C_CloseSession(k->session);
        if (k->initialized) k->f->C_Finalize(NULL);
    }
    if (k->module) dlclose(k->module);
    free(k);
}
