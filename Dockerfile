# Threadline production image: one image, three roles (web, worker, beat) chosen by the compose command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 threadline

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings, not services: give it throwaway values that are never used to connect.
RUN DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 SECRET_KEY=build-only \
    DEBUG=false FIELD_ENCRYPTION_KEY=YnVpbGQtb25seS1rZXktbm90LWZvci1ydW50aW1lLTA= \
    python manage.py collectstatic --noinput --verbosity 0 \
 && mkdir -p /app/var/media && chown -R threadline /app/var

USER threadline
EXPOSE 8000
CMD ["gunicorn", "crm.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
