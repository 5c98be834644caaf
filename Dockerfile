# The portal's one image: web (gunicorn), Celery worker and beat, and the migrate step all run it
# with a different command (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORTAL_VAR_DIR=/app/var

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN pip install .

COPY . .

# Static files are collected with the production storage (hashed names, compressed); the
# secrets here exist only for this build step and are never used at run time.
RUN DEBUG=0 SECRET_KEY=collectstatic-only SECRET_PEPPER=collectstatic-only FERNET_KEYS=collectstatic-only \
    python manage.py collectstatic --noinput \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin portal \
    && mkdir -p /app/var \
    && chown -R portal /app/var

USER portal
EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-", "--logger-class", "portal.gunicorn_logging.Logger"]
