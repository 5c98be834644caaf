"""Registers devices in bulk from a CSV file; see devices.registration for the file's rules."""

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from devices.registration import RESULT_COLUMNS, RegistrationRefused, registration_import, registration_result_csv
from portal.errors import ValidationError

PROGRESS_FROM = 10_000  # rows; shorter files finish before progress would help


class Command(BaseCommand):
    help = (
        "Registers the devices of a CSV file (columns: serial, and optionally factory_key, claim_code, pin, "
        f"claimable) and writes {', '.join(RESULT_COLUMNS)} to the output file. A bad file is refused whole."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="CSV file, UTF-8, with a header line.")
        parser.add_argument("--product", required=True, help="Product slug; the product is created if missing.")
        parser.add_argument("--product-name", default="", help="Name for a product created by this import.")
        parser.add_argument("--output", required=True, type=Path, help="Result CSV to write (must not exist).")
        parser.add_argument(
            "--batch-code", action="store_true", help="Give all devices of the file one shared claim code."
        )

    def handle(self, *args, file, product, product_name, output, batch_code, **options):
        if not file.is_file():
            raise CommandError(f"{file}: no such file.")
        # The result is the only copy of the generated factory keys: never write over an earlier one.
        if output.exists():
            raise CommandError(f"{output} exists; it may hold the only copy of earlier factory keys. Pick a new name.")
        partial = output.with_name(f".{output.name}.partial")
        try:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}.") from None

        try:
            # The file is written inside the transaction: if writing fails, nothing is registered.
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream, transaction.atomic():
                results = registration_import(
                    data=file.read_bytes(),
                    product_slug=product,
                    product_name=product_name,
                    batch_code=batch_code,
                    progress=self._progress,
                )
                registration_result_csv(results, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(partial, output)
        except RegistrationRefused as exc:
            raise CommandError(f"{file}: refused, nothing was registered.\n" + "\n".join(exc.errors)) from None
        except ValidationError as exc:
            raise CommandError(exc.message) from None
        finally:
            partial.unlink(missing_ok=True)

        self.stdout.write(
            self.style.SUCCESS(f"Registered {len(results)} devices of product {product}.")
            + f" Factory keys and claim codes are in {output}: keep it safe, it is the only copy."
        )

    def _progress(self, done, total):
        # On a terminal one line that counts up; in a log one line per batch.
        if total >= PROGRESS_FROM or done == total:
            ending = "\r" if self.stderr.isatty() and done < total else "\n"
            self.stderr.write(f"{done:,} / {total:,} devices", ending=ending)
