"""Create the superuser `admin` on the first start, so a fresh install can be logged into at once."""
import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import IntegrityError, transaction

USERNAME = "admin"


class Command(BaseCommand):
    help = ("Create the superuser 'admin' unless a user of that name exists. The password is "
            "SLIMFORGE_ADMIN_PASSWORD or a random one, printed once, on creation only.")

    def handle(self, *args, **options) -> None:
        user_model = get_user_model()
        if user_model._default_manager.filter(**{user_model.USERNAME_FIELD: USERNAME}).exists():
            return
        given = os.environ.get("SLIMFORGE_ADMIN_PASSWORD")
        password = given or secrets.token_urlsafe(12)
        try:
            with transaction.atomic():
                user_model._default_manager.create_superuser(
                    **{user_model.USERNAME_FIELD: USERNAME, "email": "", "password": password}
                )
        except IntegrityError:
            return  # another process created it a moment ago
        if given:
            self.stdout.write(f"Created user {USERNAME} with the password from SLIMFORGE_ADMIN_PASSWORD")
        else:
            self.stdout.write(f"Created user {USERNAME} with password {password}")
