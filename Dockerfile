FROM python:3.11-slim
WORKDIR /srv/provenant
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
COPY policies ./policies
# Editable install keeps migrations/ beside app/, where `provenant migrate` looks for them.
RUN pip install --no-cache-dir -e . \
    && useradd --system --uid 10001 provenant
USER 10001
EXPOSE 8080
CMD ["provenant", "serve", "--host", "0.0.0.0", "--port", "8080"]
