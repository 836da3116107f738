#ifndef EVNODE_CCURL_SHIM_H
#define EVNODE_CCURL_SHIM_H

#include <curl/curl.h>

// Typed wrappers for libcurl's variadic setters and getters, which Swift cannot call.
CURLcode evcurl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode evcurl_setopt_ptr(CURL *handle, CURLoption option, const void *value);
CURLcode evcurl_setopt_off(CURL *handle, CURLoption option, curl_off_t value);
CURLcode evcurl_setopt_write(CURL *handle, size_t (*fn)(char *, size_t, size_t, void *));
// Response header callback (CURLOPT_HEADERFUNCTION): called once per header line.
CURLcode evcurl_setopt_header(CURL *handle, size_t (*fn)(char *, size_t, size_t, void *));
CURLcode evcurl_getinfo_long(CURL *handle, CURLINFO info, long *out);
// Progress callback (CURLOPT_XFERINFOFUNCTION): returning non-zero aborts the transfer, which is
// how an in-flight request is cancelled.
CURLcode evcurl_setopt_xferinfo(CURL *handle,
                                int (*fn)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t));

#endif
