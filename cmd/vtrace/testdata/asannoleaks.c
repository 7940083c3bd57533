/*
 * asannoleaks.c - linked into an AddressSanitizer build, turns its leak
 * check off from inside the program (ASan reads these defaults before
 * ASAN_OPTIONS): the program then exits 0 under vtrace, and vtrace must
 * not say its leak check failed (TestAddressSanitizedPrograms).
 */
const char *__asan_default_options(void) { return "detect_leaks=0"; }
