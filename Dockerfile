# The Safeguard server image: web (gunicorn), Celery worker and beat all run from it.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# WeasyPrint (PDF export) needs Pango and HarfBuzz; DejaVu gives the PDFs a font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# The agent package brings the keyword engine the server shares with agents (without its desktop extra).
RUN if [ -f agent/pyproject.toml ]; then pip install ./agent; fi

# Static files are collected into the image, so it serves its own CSS through WhiteNoise when run
# alone; docker-compose.yml collects them again into the volume nginx reads (STATIC_ROOT=/data/static).
# A throwaway key: the real SECRET_KEY comes from the environment at run time, never from the image.
RUN SECRET_KEY=collectstatic-only SAFEGUARD_VAR_DIR=/tmp/build-var STATIC_ROOT=/app/staticfiles \
        python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-var

RUN useradd --system --uid 10001 --home-dir /app safeguard \
    && mkdir -p /data/media /data/static /data/var \
    && chown -R safeguard:safeguard /data
USER safeguard

ENV SAFEGUARD_VAR_DIR=/data/var \
    MEDIA_ROOT=/data/media \
    STATIC_ROOT=/app/staticfiles

EXPOSE 8000
CMD ["gunicorn", "safeguard.wsgi", "--bind=0.0.0.0:8000", "--workers=3", "--threads=4", "--reuse-port", "--no-control-socket", "--access-logfile=-", "--logger-class=safeguard.core.accesslog.AccessLogWithoutConfide"]
