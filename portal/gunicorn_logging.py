"""gunicorn's logger with the portal's redaction (`--logger-class portal.gunicorn_logging.Logger`):
the access line quotes the request line and the referer, both of which may be a transfer or
connect link, a QR code's URL or the claim form with its code."""

from gunicorn import glogging

from .logging import RedactSecretsFilter, redact


class Logger(glogging.Logger):
    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.addFilter(RedactSecretsFilter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}
