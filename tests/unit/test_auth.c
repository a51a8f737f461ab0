/* test_auth — being written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "wshub/auth.h"

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(auth_reason_names[AUTH_OK], "ok");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
