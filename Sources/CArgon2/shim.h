// Debian's libargon2 (the reference implementation, package libargon2-dev).
#include <argon2.h>
