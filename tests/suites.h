/* suites.h - one function per test suite, listed in suites.def. */
#ifndef MMT_SUITES_H
#define MMT_SUITES_H
#define SUITE(name) void suite_##name(void);
#include "suites.def"
#undef SUITE
#endif
