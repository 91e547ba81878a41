"""The project's tests, for Django's runner (`manage.py test`) and pytest-django: the test database has
the owned user table and the third-party table pointing at it."""

from django.contrib.auth import get_user_model
from django.test import TestCase
from social.models import EmailAddress


class UserSiteTests(TestCase):
    def test_a_user_with_an_address(self):
        ann = get_user_model().objects.create(username="ann", email="ann@example.com")
        EmailAddress.objects.create(user=ann, email="ann@example.com")
        self.assertEqual(list(EmailAddress.objects.values_list("user__username", flat=True)), ["ann"])
