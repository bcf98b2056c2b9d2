package io.ptune.adapter;

import io.ptune.model.Architecture;
import io.ptune.prompt.SavedPromptReader;
import io.ptune.prompt.SoftPrompt;
import java.nio.file.Path;

/** {@link SavedPromptReader} over {@link PromptAdapter#readInputPrompt} (registered in META-INF/services). */
public final class AdapterPromptReader implements SavedPromptReader {
    @Override
    public SoftPrompt readInputPrompt(Path dir, Architecture arch, String blockName) {
        return PromptAdapter.readInputPrompt(dir, arch, blockName);
    }
}
