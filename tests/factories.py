"""One factory per model; each builds a valid object. Raw secrets are kept on the instance
(`raw_factory_key`, `raw_code`, `raw_pin`) because the database only has their digests."""

import base64
import os
from datetime import timedelta

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.services.applications import APP_SECRET_PURPOSE
from devices import codes
from devices.models import ClaimCode, Device, Product, ProductField
from devices.services import factory_key_digest, pin_digest
from portal.secrets import encrypt, keyed_digest, random_token


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def verified(user, create, extracted, **kwargs):
        """Email verified unless verified=False is passed."""
        if create:
            EmailAddress.objects.create(
                user=user, email=user.email, primary=True, verified=extracted if extracted is not None else True
            )


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Sensor {n}")
    slug = factory.Sequence(lambda n: f"sensor-{n}")


class ProductFieldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductField

    product = factory.SubFactory(ProductFactory)
    key = factory.Sequence(lambda n: f"value{n}")
    label = factory.LazyAttribute(lambda field: field.key.replace("_", " ").capitalize())


class _KeepsRawSecrets:
    """Pops the raw_* declarations before the model is built and keeps them on the instance."""

    _raw_fields: tuple[str, ...] = ()

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        raw = {name: kwargs.pop(name, None) for name in cls._raw_fields}
        obj = super()._create(model_class, *args, **kwargs)
        for name, value in raw.items():
            setattr(obj, name, value)
        return obj


class ClaimCodeFactory(_KeepsRawSecrets, factory.django.DjangoModelFactory):
    class Meta:
        model = ClaimCode

    _raw_fields = ("raw_code",)
    raw_code = factory.LazyFunction(codes.generate)
    digest = factory.LazyAttribute(lambda o: codes.digest(o.raw_code))
    code_encrypted = factory.LazyAttribute(lambda o: encrypt(codes.normalize(o.raw_code)))


class DeviceFactory(_KeepsRawSecrets, factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    _raw_fields = ("raw_factory_key", "raw_pin")
    serial = factory.Sequence(lambda n: f"SN{n:08d}")
    product = factory.SubFactory(ProductFactory, slug="thermo", name="Thermo")
    raw_factory_key = factory.LazyFunction(random_token)
    factory_key_digest = factory.LazyAttribute(lambda o: factory_key_digest(o.raw_factory_key))
    raw_pin = None
    pin_digest = factory.LazyAttribute(lambda o: pin_digest(o.raw_pin) if o.raw_pin else "")


class ApplicationFactory(_KeepsRawSecrets, factory.django.DjangoModelFactory):
    """An owner's application; `raw_secret` and `raw_signing_secret` are kept on the instance."""

    class Meta:
        model = "apps.Application"

    _raw_fields = ("raw_secret", "raw_signing_secret")
    app_id = factory.Sequence(lambda n: f"app_test{n:08d}")
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Application {n}")
    raw_secret = factory.LazyFunction(random_token)
    raw_signing_secret = factory.LazyFunction(lambda: "whsec_" + base64.b64encode(os.urandom(32)).decode())
    secret_encrypted = factory.LazyAttribute(lambda o: encrypt(o.raw_secret))
    secret_digest = factory.LazyAttribute(lambda o: keyed_digest(o.raw_secret, purpose=APP_SECRET_PURPOSE))
    signing_secret_encrypted = factory.LazyAttribute(lambda o: encrypt(o.raw_signing_secret))


class ShareFactory(factory.django.DjangoModelFactory):
    """A device shared with a person (viewer unless `role` says operator)."""

    class Meta:
        model = "devices.Share"

    device = factory.SubFactory(DeviceFactory)
    user = factory.SubFactory(UserFactory)
    role = "viewer"


class SupportGrantFactory(factory.django.DjangoModelFactory):
    """A live support grant for a day, without commands unless `allow_commands`."""

    class Meta:
        model = "devices.SupportGrant"

    device = factory.SubFactory(DeviceFactory)
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))
    allow_commands = False
