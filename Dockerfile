# The engine image: one image, the command picks the part (collector, worker, api).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
RUN pip install --no-cache-dir . && useradd --system clickstream
USER clickstream
ENV CLICKSTREAM_DATA_DIR=/tmp/clickstream
ENTRYPOINT ["clickstream"]
