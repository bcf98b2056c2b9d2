package io.ptune.prompt;

import io.ptune.model.Architecture;
import java.nio.file.Path;

/**
 * Reads the input prompt of a saved adapter, for {@link PromptInit#FROM_ADAPTER} warm starts. The
 * adapter package provides the implementation through {@link java.util.ServiceLoader}
 * ({@code META-INF/services}), so that this package never depends on the adapter package, which
 * depends on it.
 */
public interface SavedPromptReader {
    /**
     * The {@code (n, C)} input prompt saved in {@code dir} for a model of {@code arch}.
     *
     * @param blockName for a composite adapter, the block to take; null for the whole prompt
     */
    SoftPrompt readInputPrompt(Path dir, Architecture arch, String blockName);
}
