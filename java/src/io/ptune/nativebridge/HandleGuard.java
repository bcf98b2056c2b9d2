package io.ptune.nativebridge;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Objects;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The lifetime and sharing rules of one native object (a model, prompt, classifier or trainer).
 *
 * <p>A call that only reads the object (logits, generation, reading a parameter) {@link #shared
 * shares} it with other threads; a call that changes it (a training step, writing a parameter,
 * unfreezing layers, calibrating) has it {@link #exclusive to itself} while it runs. {@link #close}
 * waits for the calls in flight, frees the native object once, and makes every later call throw
 * an {@link IllegalStateException} that names the object: a closed handle never reaches C++, where
 * it would be a null or dangling pointer.
 *
 * <p>A call that involves several objects ({@link #hold}) locks them in one fixed order (model,
 * classifier, prompt, trainer, decoding session), whatever order the caller lists them in, so
 * concurrent calls never deadlock.
 */
final class HandleGuard {
    /** The lock order of the native objects. */
    enum Kind {
        MODEL,
        CLASSIFIER,
        PROMPT,
        TRAINER,
        SESSION
    }

    /** One object a call needs, and whether it needs it exclusively. */
    record Use(HandleGuard guard, boolean exclusive) {}

    private final Kind kind;
    private final String what;
    private final String hint;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** Written under the write lock; read under either lock (or racily by {@link #isClosed}). */
    private volatile boolean closed;

    /**
     * @param what how messages name the object, e.g. "model /models/stories260k"
     * @param hint what to do instead, appended to the closed error
     */
    HandleGuard(Kind kind, String what, String hint) {
        this.kind = Objects.requireNonNull(kind, "kind");
        this.what = Objects.requireNonNull(what, "what");
        this.hint = Objects.requireNonNull(hint, "hint");
    }

    Use shared() {
        return new Use(this, false);
    }

    Use exclusive() {
        return new Use(this, true);
    }

    String what() {
        return what;
    }

    boolean isClosed() {
        return closed;
    }

    /** Throws the closed error when the object is closed (a cheap check without locking). */
    void ensureOpen() {
        if (closed) {
            throw closedError();
        }
    }

    /**
     * Closes the object: waits for the calls in flight, then runs {@code release} (which frees the
     * native memory) the first time only. Returns whether this call closed it.
     */
    boolean close(Runnable release) {
        Lock write = lock.writeLock();
        write.lock();
        try {
            if (closed) {
                return false;
            }
            closed = true;
            release.run();
            return true;
        } finally {
            write.unlock();
        }
    }

    private Lock acquire(boolean exclusive) {
        Lock l = exclusive ? lock.writeLock() : lock.readLock();
        l.lock();
        if (closed) {
            l.unlock();
            throw closedError();
        }
        return l;
    }

    private IllegalStateException closedError() {
        return new IllegalStateException(what + " is closed; " + hint);
    }

    /**
     * Locks every object of {@code uses} (null entries are skipped) in the fixed order, so that a
     * call can run on them; close the result to unlock. Throws, holding nothing, when one of them
     * is closed.
     */
    static Held hold(Use... uses) {
        Use[] ordered = Arrays.stream(uses).filter(Objects::nonNull)
                .sorted(Comparator.comparing(u -> u.guard().kind)).toArray(Use[]::new);
        Lock[] taken = new Lock[ordered.length];
        int n = 0;
        try {
            for (int i = 0; i < ordered.length; i++) {
                Use use = ordered[i];
                if (isListedAgain(ordered, i)) {
                    continue;  // one lock per object: its exclusive use, if any, is taken below
                }
                taken[n] = use.guard().acquire(use.exclusive() || needsExclusive(ordered, use.guard()));
                n++;
            }
        } catch (RuntimeException | Error e) {
            unlock(taken, n);
            throw e;
        }
        return new Held(taken, n);
    }

    /** Whether ordered[i]'s object appears earlier in ordered (a read-write lock cannot be taken twice safely). */
    private static boolean isListedAgain(Use[] ordered, int i) {
        for (int j = 0; j < i; j++) {
            if (ordered[j].guard() == ordered[i].guard()) {
                return true;
            }
        }
        return false;
    }

    private static boolean needsExclusive(Use[] ordered, HandleGuard guard) {
        for (Use use : ordered) {
            if (use.guard() == guard && use.exclusive()) {
                return true;
            }
        }
        return false;
    }

    private static void unlock(Lock[] locks, int n) {
        for (int i = n - 1; i >= 0; i--) {
            locks[i].unlock();
        }
    }

    /** Locks taken by {@link #hold}; closing releases them in reverse order. */
    static final class Held implements AutoCloseable {
        private final Lock[] locks;
        private final int count;

        private Held(Lock[] locks, int count) {
            this.locks = locks;
            this.count = count;
        }

        @Override
        public void close() {
            unlock(locks, count);
        }
    }
}
