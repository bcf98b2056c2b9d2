package io.ptune.serve;

import io.ptune.InvalidConfigException;

/**
 * Settings of an {@link AdapterServer}. Build it with {@link #builder()}.
 *
 * @param port the TCP port on 127.0.0.1 (0: an ephemeral port, see {@link AdapterServer#port()})
 * @param maxBatch the most requests one mixed batch runs (1 turns batching off)
 * @param maxWaitMs how long the scheduler waits for more requests after the first of a batch
 * @param queueCapacity requests waiting to run before new ones get 429
 * @param timeoutMs a request's deadline from its arrival (504 after it)
 * @param handlerThreads threads that read requests and write responses
 */
public record ServeConfig(int port, int maxBatch, long maxWaitMs, int queueCapacity, long timeoutMs,
        int handlerThreads) {
    public ServeConfig {
        if (port < 0 || port > 65535) {
            throw new InvalidConfigException("port", "must be in [0, 65535], got " + port);
        }
        if (maxBatch < 1) {
            throw new InvalidConfigException("maxBatch", "must be >= 1 (1 = no batching), got " + maxBatch);
        }
        if (maxWaitMs < 0) {
            throw new InvalidConfigException("maxWaitMs", "must be >= 0, got " + maxWaitMs);
        }
        if (queueCapacity < 1) {
            throw new InvalidConfigException("queueCapacity", "must be >= 1, got " + queueCapacity);
        }
        if (timeoutMs < 1) {
            throw new InvalidConfigException("timeoutMs", "must be >= 1, got " + timeoutMs);
        }
        if (handlerThreads < 1) {
            throw new InvalidConfigException("handlerThreads", "must be >= 1, got " + handlerThreads);
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder with the defaults of {@code ptune serve}. */
    public static final class Builder {
        private int port = 8080;
        private int maxBatch = 16;
        private long maxWaitMs = 10;
        private int queueCapacity = 256;
        private long timeoutMs = 30_000;
        private int handlerThreads = 4;

        private Builder() {}

        /** Default 8080; 0 picks a free port. */
        public Builder port(int port) {
            this.port = port;
            return this;
        }

        /** Default 16. */
        public Builder maxBatch(int maxBatch) {
            this.maxBatch = maxBatch;
            return this;
        }

        /** Default 10. */
        public Builder maxWaitMs(long maxWaitMs) {
            this.maxWaitMs = maxWaitMs;
            return this;
        }

        /** Default 256. */
        public Builder queueCapacity(int queueCapacity) {
            this.queueCapacity = queueCapacity;
            return this;
        }

        /** Default 30000. */
        public Builder timeoutMs(long timeoutMs) {
            this.timeoutMs = timeoutMs;
            return this;
        }

        /** Default 4. */
        public Builder handlerThreads(int handlerThreads) {
            this.handlerThreads = handlerThreads;
            return this;
        }

        /** @throws InvalidConfigException naming the first field out of range */
        public ServeConfig build() {
            return new ServeConfig(port, maxBatch, maxWaitMs, queueCapacity, timeoutMs, handlerThreads);
        }
    }
}
