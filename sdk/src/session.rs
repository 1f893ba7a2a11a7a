//! Sessions: one inspection context per camera or thread, on a shared [`Engine`]. A session chooses its profile
//! (one engine serves many customers without reloading the backbone) and keeps the rolling window of a stream for
//! mutual scoring.

use std::sync::Arc;

use crate::detection::Detection;
use crate::engine::{BoundProfile, Engine, mutual_scores};
use crate::error::{LoupeError, Result};
use crate::image_input::ImageView;
use crate::reference::{MutualSettings, MutualWindow};
use crate::thresholding::InspectOptions;

/// An inspection context on an engine; not shared between threads (`&mut self`), cheap to create.
pub struct Session {
    engine: Arc<Engine>,
    profile: Option<Arc<BoundProfile>>,
    window: MutualWindow,
    mutual: bool,
}

impl Session {
    /// A session with the engine's default profile, mutual scoring as `reference.mutual` says, and an empty window
    /// of `reference.mutual_window` images.
    pub fn new(engine: Arc<Engine>) -> Result<Self> {
        let window = MutualWindow::new(engine.mutual_settings())?;
        let profile = engine.default_profile().cloned();
        let mutual = engine.reference_config().mutual;
        Ok(Self { engine, profile, window, mutual })
    }

    /// Turns mutual scoring on or off for this session (whatever `reference.mutual` says); the window is kept.
    pub fn set_mutual(&mut self, on: bool) {
        self.mutual = on;
    }

    /// Whether this session scores mutually (when its profile holds no golden samples).
    pub fn mutual(&self) -> bool {
        self.mutual
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The active profile.
    pub fn profile(&self) -> Option<&Arc<BoundProfile>> {
        self.profile.as_ref()
    }

    /// Switches to `profile` (`None`: no profile). The window is cleared: it held another product's images.
    /// Fails when the profile was bound to another engine's backbone.
    pub fn set_profile(&mut self, profile: Option<Arc<BoundProfile>>) -> Result<()> {
        if let Some(p) = &profile {
            self.check_profile(p)?;
        }
        self.profile = profile;
        self.window.clear();
        Ok(())
    }

    /// Images in the mutual window.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Resizes the mutual window (clearing it); `window` images, at least 1.
    pub fn set_window(&mut self, window: usize) -> Result<()> {
        let settings = MutualSettings { window, ..*self.window.settings() };
        self.window = MutualWindow::new(settings)?;
        Ok(())
    }

    /// Forgets the window's images.
    pub fn clear_window(&mut self) {
        self.window.clear();
    }

    /// Inspects one image of a stream: golden samples when the profile holds them; else, with
    /// `reference.mutual`, against the window (text only while it holds fewer than `reference.mutual_min_pool`
    /// images, flagged in `evidence.window_filling`), after which the image joins the window; else text only.
    pub fn inspect(&mut self, image: &ImageView<'_>) -> Result<Detection> {
        self.inspect_options(image, &InspectOptions::default())
    }

    /// As [`Session::inspect`], with per-call options.
    pub fn inspect_options(&mut self, image: &ImageView<'_>, options: &InspectOptions) -> Result<Detection> {
        let profile = self.profile.as_deref();
        let mut results = if mutual_scores(self.mutual, profile) {
            options.validate()?;
            let features = self.engine.encode(std::slice::from_ref(image))?;
            let evidence = self.window.evidence(&features[0])?;
            let filling = evidence.is_none();
            let output = [self.engine.output_size(image)];
            let mut d = self.engine.postprocess_call(&features, &[evidence], &output, profile, options)?;
            d.iter_mut().for_each(|d| d.evidence.window_filling = filling);
            d
        } else {
            self.engine.inspect_call(std::slice::from_ref(image), profile, false, options)?
        };
        results.pop().ok_or_else(|| LoupeError::inference("session", "no result"))
    }

    /// Inspects a batch with the session's profile: golden samples, or (mutual on) each image against the other
    /// images of the batch ([`Engine::inspect_scored`]); the window is neither used nor changed.
    pub fn inspect_batch(&mut self, images: &[ImageView<'_>]) -> Result<Vec<Detection>> {
        self.inspect_batch_options(images, &InspectOptions::default())
    }

    /// As [`Session::inspect_batch`], with per-call options.
    pub fn inspect_batch_options(
        &mut self,
        images: &[ImageView<'_>],
        options: &InspectOptions,
    ) -> Result<Vec<Detection>> {
        self.engine.inspect_call(images, self.profile.as_deref(), self.mutual, options)
    }

    /// Inspects one image with `profile` for this call only (golden samples, or text when it has none); neither
    /// the session's profile nor its window is used or changed.
    pub fn inspect_with(&mut self, image: &ImageView<'_>, profile: &BoundProfile) -> Result<Detection> {
        self.inspect_with_options(image, profile, &InspectOptions::default())
    }

    /// As [`Session::inspect_with`], with per-call options.
    pub fn inspect_with_options(
        &mut self,
        image: &ImageView<'_>,
        profile: &BoundProfile,
        options: &InspectOptions,
    ) -> Result<Detection> {
        self.check_profile(profile)?;
        let mut v = self.engine.inspect_call(std::slice::from_ref(image), Some(profile), false, options)?;
        v.pop().ok_or_else(|| LoupeError::inference("session", "no result"))
    }

    /// A profile bound by another engine is refused when that engine's model or prompt bank differs (its text
    /// matrix would be the other bank's).
    fn check_profile(&self, p: &BoundProfile) -> Result<()> {
        let model = self.engine.backbone().info();
        if p.model_id() != model.id {
            return Err(LoupeError::profile(
                p.name(),
                format!("bound to backbone model_id {}, this engine runs {}", p.model_id(), model.id),
            ));
        }
        let bank = self.engine.bank_identity();
        if p.bank_id() != bank {
            return Err(LoupeError::profile(
                p.name(),
                format!("bound with prompt bank `{}`, this engine has `{bank}`: bind it to this engine", p.bank_id()),
            ));
        }
        Ok(())
    }
}
