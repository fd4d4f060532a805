# The base image by digest: python:3.11-slim (Debian bookworm), multi-arch index. Renew it
# deliberately, with `docker buildx imagetools inspect python:3.11-slim`, as our docs tell
# everyone else to pin theirs.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PROVENANT_POLICY_DIR=/srv/provenant/policies \
    PROVENANT_DATABASE_URL=sqlite:////var/lib/provenant/provenant.db \
    PROVENANT_AUDIT_KEY_FILE=/var/lib/provenant/audit-key.pem
# Every dependency pinned by hash (requirements.lock, `make lock`); then our own wheel, not an
# editable checkout: the code directory is root's and read-only to the service.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels \
    && groupadd --system --gid 10001 provenant \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/provenant provenant \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/provenant
WORKDIR /srv/provenant
COPY policies ./policies
# The only writable place: the audit signing key (and a SQLite database, if one is used). A
# volume mounted here starts with this directory's owner, so uid 10001 can write to it.
VOLUME /var/lib/provenant
USER 10001
EXPOSE 8080
CMD ["provenant", "serve", "--host", "0.0.0.0", "--port", "8080"]
