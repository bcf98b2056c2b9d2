package io.ptune;

import io.ptune.model.Model;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Base of the test classes that run on the stories260K model: {@link #model} is loaded before a
 * class's tests and closed after them (classes run one after another, so they share the field).
 */
public abstract class Stories260kTest {
    protected static Model model;

    @BeforeAll
    static void loadModel() {
        model = Model.load(TestPaths.stories260k());
    }

    @AfterAll
    static void closeModel() {
        model.close();
    }
}
