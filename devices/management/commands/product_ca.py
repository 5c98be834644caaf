from django.core.management.base import BaseCommand, CommandError

from devices.ca import product_ca_ensure
from devices.models import Product


class Command(BaseCommand):
    help = "Creates the certificate authority of a product (done on first use otherwise) and prints its certificate."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The product's slug.")
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="Replace an existing CA. Devices keep their certificates until they provision again.",
        )

    def handle(self, *args, slug, rotate, **options):
        product = Product.objects.filter(slug=slug).first()
        if product is None:
            raise CommandError(f"No product with the slug {slug!r}.")
        self.stdout.write(product_ca_ensure(product=product, rotate=rotate), ending="")
