//! The window's microphone. WebKitGTK ships with media capture off and denies a page's microphone request when
//! nobody answers it, so on Linux the app turns capture on and grants audio (and the device list, for the
//! microphone chooser) to its own page; cameras and screen sharing stay denied. The page is the app's own
//! (`tauri://`): no remote content runs in the window.
//!
//! `KARTE_MOCK_MICROPHONE=1` swaps the devices for WebKit's built-in test devices (a microphone that plays a tone),
//! so the desktop tests can record under Xvfb, where no sound card exists. Nothing else changes.

#[cfg(target_os = "linux")]
pub fn allow(app: &tauri::App) {
    use tauri::Manager;
    use webkit2gtk::glib::prelude::{Cast, ObjectExt};
    use webkit2gtk::{
        DeviceInfoPermissionRequest, PermissionRequestExt, SettingsExt, UserMediaPermissionRequest,
        UserMediaPermissionRequestExt, WebViewExt,
    };
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    let mock = std::env::var("KARTE_MOCK_MICROPHONE").is_ok_and(|v| v == "1");
    let result = window.with_webview(move |wv| {
        let view = wv.inner();
        if let Some(settings) = WebViewExt::settings(&view) {
            settings.set_enable_media_stream(true);
            settings.set_enable_mock_capture_devices(mock);
        }
        view.connect_permission_request(|_, request| {
            let audio_only = request
                .downcast_ref::<UserMediaPermissionRequest>()
                .is_some_and(|r| r.is_for_audio_device() && !r.is_for_video_device());
            if audio_only || request.is::<DeviceInfoPermissionRequest>() {
                request.allow();
            } else {
                request.deny();
            }
            true
        });
    });
    if let Err(e) = result {
        tracing::warn!("microphone not enabled: {e}");
    }
}

/// Elsewhere the platform's webview asks the user (WebView2, WKWebView); nothing to set.
#[cfg(not(target_os = "linux"))]
pub fn allow(_app: &tauri::App) {}
